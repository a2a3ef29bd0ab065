/* Runs a kner export through TensorFlow's C API, with no Python in the process.
 *
 * This is the loader TF Serving uses (`LoadSavedModel`, reached here through
 * `TF_LoadSessionFromSavedModel`): the export is loaded with the tag `serve`,
 * its `serving_default` signature is read from the MetaGraphDef, the texts
 * are fed to the signature's input as a DT_STRING tensor and every output of
 * the signature is fetched. So an export that runs here loads in a server
 * built from the same TensorFlow, with the same kernels and no Python.
 *
 * Usage (build with tools/c_loader/build.sh):
 *   run_export --export_dir=DIR [--batch_size=32] [--input=FILE] [--timings] < texts.jsonl
 *
 *   DIR      a version directory (holding saved_model.pb) or the base
 *            directory TF Serving watches (its highest integer version).
 *   input    one JSON string per line, the texts ("张三在北京"); stdin by
 *            default. `jq -R . plain.txt` turns plain lines into this form.
 *            A lone surrogate escape (\ud800) becomes U+FFFD, as in
 *            kner.Predictor.
 *   output   one JSON object per text on stdout, in input order: every output
 *            of serving_default, its row for that text, padding included
 *            ({"entity_end": [1, 4], ..., "tags": ["B-name", ...]}); keys
 *            sorted; float32 printed with 9 significant digits (round-trips).
 *   stderr   what was loaded, and the time spent in TF_SessionRun (wall
 *            and process CPU seconds); with --timings also each batch's
 *            wall and CPU seconds, one line each (bench/inference.py reads
 *            them).
 *
 * Texts run in consecutive batches of --batch_size, in input order.
 * Exit status: 0 ok; 2 bad usage or input (one line naming the problem);
 * 1 TensorFlow failed (its message).
 */

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tensorflow/c/c_api.h"
#include "tensorflow/c/tf_tstring.h"

#define MAX_OUTPUTS 64
#define SIGNATURE "serving_default"

static void die(int status, const char *format, ...) {
  va_list args;
  va_start(args, format);
  fputs("run_export: ", stderr);
  vfprintf(stderr, format, args);
  fputc('\n', stderr);
  va_end(args);
  exit(status);
}

static void *checked_realloc(void *p, size_t size) {
  p = realloc(p, size ? size : 1);
  if (!p) die(1, "out of memory");
  return p;
}

static double seconds(clockid_t clock) {
  struct timespec t;
  clock_gettime(clock, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- Finding the export ------------------------------------------------- */

static int is_file(const char *path) {
  struct stat s;
  return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

/* DIR itself when it holds saved_model.pb, else DIR/<highest integer version
 * holding one> (as kner.serving.predictor.find_export); NULL if none. */
static char *find_export(const char *dir) {
  size_t n = strlen(dir) + 64;
  char *path = checked_realloc(NULL, n);
  snprintf(path, n, "%s/saved_model.pb", dir);
  if (is_file(path)) {
    snprintf(path, n, "%s", dir);
    return path;
  }
  DIR *d = opendir(dir);
  if (!d) return NULL;
  long best = -1;
  struct dirent *entry;
  while ((entry = readdir(d)) != NULL) {
    const char *name = entry->d_name;
    if (!*name || strspn(name, "0123456789") != strlen(name) || strlen(name) > 18) continue;
    snprintf(path, n, "%s/%s/saved_model.pb", dir, name);
    long version = strtol(name, NULL, 10);
    if (version > best && is_file(path)) best = version;
  }
  closedir(d);
  if (best < 0) return NULL;
  snprintf(path, n, "%s/%ld", dir, best);
  return path;
}

/* ---- The signature, read from the MetaGraphDef's protobuf wire format --- */

/* Field numbers (tensorflow/core/protobuf/meta_graph.proto):
 * MetaGraphDef.signature_def = 5 (map<string, SignatureDef>);
 * SignatureDef.inputs = 1, .outputs = 2 (map<string, TensorInfo>);
 * TensorInfo.name = 1; a map entry is {key = 1, value = 2}. */

typedef struct {
  const uint8_t *at, *end;
} Reader;

typedef struct {
  char key[128];  /* the signature's name for it, e.g. "entity_text" */
  char name[256]; /* the graph tensor, e.g. "StatefulPartitionedCall:3" */
} Binding;

static int read_varint(Reader *r, uint64_t *value) {
  *value = 0;
  for (int shift = 0; shift < 64 && r->at < r->end; shift += 7) {
    uint8_t byte = *r->at++;
    *value |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return 1;
  }
  return 0;
}

/* The next field of a message: its number, and for length-delimited fields
 * (wire type 2) its bytes in *sub. Other wire types are skipped over.
 * Returns 0 at the end of the message, -1 on malformed input. */
static int next_field(Reader *r, uint32_t *number, Reader *sub) {
  while (r->at < r->end) {
    uint64_t key, value;
    if (!read_varint(r, &key)) return -1;
    *number = (uint32_t)(key >> 3);
    switch (key & 7) {
      case 0:
        if (!read_varint(r, &value)) return -1;
        break;
      case 1:
        if (r->end - r->at < 8) return -1;
        r->at += 8;
        break;
      case 5:
        if (r->end - r->at < 4) return -1;
        r->at += 4;
        break;
      case 2:
        if (!read_varint(r, &value) || value > (uint64_t)(r->end - r->at)) return -1;
        sub->at = r->at;
        sub->end = r->at + value;
        r->at += value;
        return 1;
      default:
        return -1; /* groups: not used by these messages */
    }
  }
  return 0;
}

static int equals(Reader s, const char *text) {
  size_t n = strlen(text);
  return (size_t)(s.end - s.at) == n && memcmp(s.at, text, n) == 0;
}

static void copy_string(Reader s, char *out, size_t size, const char *what) {
  size_t n = (size_t)(s.end - s.at);
  if (n >= size) die(1, "signature %s: name too long (%zu bytes)", what, n);
  memcpy(out, s.at, n);
  out[n] = '\0';
}

/* The {key, tensor name} entries of map field `field` of a SignatureDef. */
static int read_bindings(Reader signature, uint32_t field, Binding *out, int capacity) {
  int count = 0;
  uint32_t number;
  Reader entry, part, info;
  int status;
  while ((status = next_field(&signature, &number, &entry)) == 1) {
    if (number != field) continue;
    if (count == capacity) die(1, "signature " SIGNATURE ": more than %d tensors", capacity);
    Binding *b = &out[count++];
    b->key[0] = b->name[0] = '\0';
    while ((status = next_field(&entry, &number, &part)) == 1) {
      if (number == 1) copy_string(part, b->key, sizeof b->key, "key");
      if (number != 2) continue;
      while ((status = next_field(&part, &number, &info)) == 1)
        if (number == 1) copy_string(info, b->name, sizeof b->name, "tensor");
      if (status < 0) die(1, "malformed TensorInfo in the MetaGraphDef");
    }
    if (status < 0) die(1, "malformed SignatureDef map entry in the MetaGraphDef");
    if (!b->name[0]) die(1, "signature " SIGNATURE ": '%s' is not a dense tensor", b->key);
  }
  if (status < 0) die(1, "malformed SignatureDef in the MetaGraphDef");
  return count;
}

/* Fills inputs/outputs with the bindings of signature SIGNATURE. */
static void read_signature(const TF_Buffer *meta_graph, Binding *inputs, int *num_inputs, Binding *outputs,
                           int *num_outputs) {
  Reader r = {meta_graph->data, (const uint8_t *)meta_graph->data + meta_graph->length};
  Reader entry, part, key = {NULL, NULL}, value = {NULL, NULL};
  uint32_t number;
  int status;
  while ((status = next_field(&r, &number, &entry)) == 1) {
    if (number != 5) continue;
    while ((status = next_field(&entry, &number, &part)) == 1) {
      if (number == 1) key = part;
      if (number == 2) value = part;
    }
    if (status < 0) break;
    if (key.at && equals(key, SIGNATURE)) {
      *num_inputs = read_bindings(value, 1, inputs, MAX_OUTPUTS);
      *num_outputs = read_bindings(value, 2, outputs, MAX_OUTPUTS);
      return;
    }
  }
  if (status < 0) die(1, "malformed MetaGraphDef");
  die(1, "the export has no signature '" SIGNATURE "'");
}

static int by_key(const void *a, const void *b) { return strcmp(((const Binding *)a)->key, ((const Binding *)b)->key); }

/* "op:index" -> the TF_Output of the loaded graph. */
static TF_Output graph_tensor(TF_Graph *graph, const char *name) {
  char op[256];
  const char *colon = strrchr(name, ':');
  size_t n = colon ? (size_t)(colon - name) : strlen(name);
  memcpy(op, name, n);
  op[n] = '\0';
  TF_Output out = {TF_GraphOperationByName(graph, op), colon ? atoi(colon + 1) : 0};
  if (!out.oper) die(1, "the graph has no operation '%s' (signature tensor %s)", op, name);
  return out;
}

/* ---- Input: one JSON string per line ------------------------------------ */

typedef struct {
  char *data;
  size_t size, capacity;
} Bytes;

static void put_byte(Bytes *b, char c) {
  if (b->size == b->capacity) {
    b->capacity = b->capacity ? 2 * b->capacity : 64;
    b->data = checked_realloc(b->data, b->capacity);
  }
  b->data[b->size++] = c;
}

static void put_utf8(Bytes *b, uint32_t code) {
  if (code < 0x80) {
    put_byte(b, (char)code);
  } else if (code < 0x800) {
    put_byte(b, (char)(0xc0 | code >> 6));
    put_byte(b, (char)(0x80 | (code & 0x3f)));
  } else if (code < 0x10000) {
    put_byte(b, (char)(0xe0 | code >> 12));
    put_byte(b, (char)(0x80 | ((code >> 6) & 0x3f)));
    put_byte(b, (char)(0x80 | (code & 0x3f)));
  } else {
    put_byte(b, (char)(0xf0 | code >> 18));
    put_byte(b, (char)(0x80 | ((code >> 12) & 0x3f)));
    put_byte(b, (char)(0x80 | ((code >> 6) & 0x3f)));
    put_byte(b, (char)(0x80 | (code & 0x3f)));
  }
}

static int hex4(const char *s, uint32_t *value) {
  *value = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (digit < 0) return 0;
    *value = *value << 4 | (uint32_t)digit;
  }
  return 1;
}

/* Decodes the JSON string literal that is the whole of `line` (trailing
 * whitespace allowed) into `out`; returns NULL or what is wrong. */
static const char *decode_json_string(const char *line, Bytes *out) {
  out->size = 0;
  const char *p = line;
  while (*p == ' ' || *p == '\t') p++;
  if (*p++ != '"') return "not a JSON string (expected one JSON string per line, e.g. \"张三在北京\")";
  for (;;) {
    unsigned char c = (unsigned char)*p++;
    if (c == '"') break;
    if (c == '\0' || c == '\n') return "unterminated JSON string";
    if (c < 0x20) return "raw control character in a JSON string (escape it)";
    if (c != '\\') {
      put_byte(out, (char)c);
      continue;
    }
    uint32_t code, low;
    switch (*p++) {
      case '"': put_byte(out, '"'); break;
      case '\\': put_byte(out, '\\'); break;
      case '/': put_byte(out, '/'); break;
      case 'b': put_byte(out, '\b'); break;
      case 'f': put_byte(out, '\f'); break;
      case 'n': put_byte(out, '\n'); break;
      case 'r': put_byte(out, '\r'); break;
      case 't': put_byte(out, '\t'); break;
      case 'u':
        if (!hex4(p, &code)) return "bad \\u escape";
        p += 4;
        if (code >= 0xd800 && code < 0xdc00 && p[0] == '\\' && p[1] == 'u' && hex4(p + 2, &low) && low >= 0xdc00 &&
            low < 0xe000) {
          code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
          p += 6;
        } else if (code >= 0xd800 && code < 0xe000) {
          code = 0xfffd; /* a lone surrogate has no UTF-8 form */
        }
        put_utf8(out, code);
        break;
      default:
        return "bad escape in a JSON string";
    }
  }
  while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
  return *p ? "text after the JSON string" : NULL;
}

/* ---- Output: JSON ------------------------------------------------------- */

static void print_json_string(const char *s, size_t n) {
  putchar('"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      putchar('\\');
      putchar(c);
    } else if (c < 0x20) {
      printf("\\u%04x", c);
    } else {
      putchar(c);
    }
  }
  putchar('"');
}

static void print_element(const TF_Tensor *t, int64_t i) {
  const void *data = TF_TensorData(t);
  switch (TF_TensorType(t)) {
    case TF_STRING: {
      const TF_TString *s = (const TF_TString *)data + i;
      print_json_string(TF_StringGetDataPointer(s), TF_StringGetSize(s));
      break;
    }
    case TF_FLOAT: {
      float x = ((const float *)data)[i];
      if (isfinite(x)) printf("%.9g", (double)x);
      else fputs("null", stdout);
      break;
    }
    case TF_DOUBLE: {
      double x = ((const double *)data)[i];
      if (isfinite(x)) printf("%.17g", x);
      else fputs("null", stdout);
      break;
    }
    case TF_INT32: printf("%d", ((const int32_t *)data)[i]); break;
    case TF_INT64: printf("%lld", (long long)((const int64_t *)data)[i]); break;
    case TF_BOOL: fputs(((const unsigned char *)data)[i] ? "true" : "false", stdout); break;
    default: die(1, "an output has dtype %d, which this program does not print", (int)TF_TensorType(t));
  }
}

/* Elements [first, first + prod(dims[axis:])) as nested JSON lists. */
static void print_nested(const TF_Tensor *t, int axis, int64_t first) {
  if (axis == TF_NumDims(t)) {
    print_element(t, first);
    return;
  }
  int64_t stride = 1;
  for (int k = axis + 1; k < TF_NumDims(t); k++) stride *= TF_Dim(t, k);
  putchar('[');
  for (int64_t j = 0; j < TF_Dim(t, axis); j++) {
    if (j) fputs(", ", stdout);
    print_nested(t, axis + 1, first + j * stride);
  }
  putchar(']');
}

/* Row `row` of an output whose first dimension is the batch (a scalar output
 * is printed as it is for every row). */
static void print_row(const TF_Tensor *t, int64_t row) {
  if (TF_NumDims(t) == 0) {
    print_element(t, 0);
    return;
  }
  int64_t stride = 1;
  for (int k = 1; k < TF_NumDims(t); k++) stride *= TF_Dim(t, k);
  print_nested(t, 1, row * stride);
}

/* ---- Running ------------------------------------------------------------ */

static void free_strings(void *data, size_t len, void *arg) {
  (void)arg;
  TF_TString *s = data;
  for (size_t i = 0; i < len / sizeof(TF_TString); i++) TF_StringDealloc(&s[i]);
  free(data);
}

/* A [n] DT_STRING tensor of the texts. Its buffer is aligned as TensorFlow
 * wants, so TF_NewTensor takes it over instead of copying it. */
static TF_Tensor *string_tensor(Bytes *texts, int64_t n) {
  size_t alignment = TF_TensorDefaultAlignment(), size = (size_t)n * sizeof(TF_TString);
  size_t rounded = (size + alignment - 1) / alignment * alignment;
  TF_TString *data = aligned_alloc(alignment, rounded ? rounded : alignment);
  if (!data) die(1, "out of memory");
  for (int64_t i = 0; i < n; i++) {
    TF_StringInit(&data[i]);
    TF_StringCopy(&data[i], texts[i].data ? texts[i].data : "", texts[i].size);
  }
  return TF_NewTensor(TF_STRING, &n, 1, data, size, free_strings, NULL);
}

static void check(TF_Status *status, const char *what) {
  if (TF_GetCode(status) != TF_OK) die(1, "%s: %s", what, TF_Message(status));
}

int main(int argc, char **argv) {
  const char *export_dir = NULL, *input = "-";
  long batch_size = 32;
  int timings = 0;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (!strncmp(arg, "--export_dir=", 13)) {
      export_dir = arg + 13;
    } else if (!strncmp(arg, "--input=", 8)) {
      input = arg + 8;
    } else if (!strncmp(arg, "--batch_size=", 13)) {
      char *end;
      batch_size = strtol(arg + 13, &end, 10);
      if (*end || batch_size < 1) die(2, "--batch_size must be a positive integer, got '%s'", arg + 13);
    } else if (!strcmp(arg, "--timings")) {
      timings = 1;
    } else if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
      puts("usage: run_export --export_dir=DIR [--batch_size=32] [--input=FILE|-] [--timings]\n"
           "Runs the serving_default signature of a kner export through TensorFlow's C API.\n"
           "Input: one JSON string (a text) per line. Output: one JSON object per text.");
      return 0;
    } else {
      die(2, "unknown argument '%s' (see --help)", arg);
    }
  }
  if (!export_dir) die(2, "--export_dir is required (a kner export: a version dir or the base dir)");
  char *version_dir = find_export(export_dir);
  if (!version_dir) die(2, "%s: no saved_model.pb there nor in an integer version directory: check --export_dir", export_dir);

  /* Read the texts first, so that bad input stops before the slow load. */
  FILE *in = strcmp(input, "-") ? fopen(input, "r") : stdin;
  if (!in) die(2, "%s: %s: check --input", input, strerror(errno));
  const char *input_name = strcmp(input, "-") ? input : "stdin";
  Bytes *texts = NULL;
  int64_t num_texts = 0;
  char *line = NULL;
  size_t line_capacity = 0;
  ssize_t length;
  for (long number = 1; (length = getline(&line, &line_capacity, in)) >= 0; number++) {
    if (strspn(line, " \t\r\n") == (size_t)length) continue; /* blank line */
    if (memchr(line, '\0', (size_t)length)) die(2, "%s, line %ld: NUL byte (escape it as \\u0000)", input_name, number);
    texts = checked_realloc(texts, (size_t)(num_texts + 1) * sizeof *texts);
    texts[num_texts] = (Bytes){NULL, 0, 0};
    const char *problem = decode_json_string(line, &texts[num_texts]);
    if (problem) die(2, "%s, line %ld: %s", input_name, number, problem);
    num_texts++;
  }
  free(line);
  if (in != stdin) fclose(in);

  TF_Status *status = TF_NewStatus();
  TF_SessionOptions *options = TF_NewSessionOptions();
  TF_Graph *graph = TF_NewGraph();
  TF_Buffer *meta_graph = TF_NewBuffer();
  const char *tags[] = {"serve"};
  double started = seconds(CLOCK_MONOTONIC);
  TF_Session *session = TF_LoadSessionFromSavedModel(options, NULL, version_dir, tags, 1, graph, meta_graph, status);
  check(status, version_dir);
  double loaded = seconds(CLOCK_MONOTONIC) - started;

  Binding inputs[MAX_OUTPUTS], outputs[MAX_OUTPUTS];
  int num_inputs = 0, num_outputs = 0;
  read_signature(meta_graph, inputs, &num_inputs, outputs, &num_outputs);
  if (num_inputs != 1 || strcmp(inputs[0].key, "text"))
    die(1, "signature " SIGNATURE " must have the one input 'text' (a kner export), it has %d", num_inputs);
  qsort(outputs, (size_t)num_outputs, sizeof *outputs, by_key);
  TF_Output feed = graph_tensor(graph, inputs[0].name), fetches[MAX_OUTPUTS];
  for (int k = 0; k < num_outputs; k++) fetches[k] = graph_tensor(graph, outputs[k].name);
  fprintf(stderr, "run_export: loaded %s (tag serve) in %.2f s; " SIGNATURE ": input text, %d outputs\n", version_dir,
          loaded, num_outputs);

  double running = 0, cpu = 0;
  int64_t batches = 0;
  double *batch_seconds = checked_realloc(NULL, (size_t)(num_texts / batch_size + 1) * sizeof(double));
  double *batch_cpu = checked_realloc(NULL, (size_t)(num_texts / batch_size + 1) * sizeof(double));
  for (int64_t begin = 0; begin < num_texts; begin += batch_size) {
    int64_t n = num_texts - begin < batch_size ? num_texts - begin : batch_size;
    TF_Tensor *text = string_tensor(texts + begin, n), *values[MAX_OUTPUTS];
    double cpu_started = seconds(CLOCK_PROCESS_CPUTIME_ID);
    started = seconds(CLOCK_MONOTONIC);
    TF_SessionRun(session, NULL, &feed, &text, 1, fetches, values, num_outputs, NULL, 0, NULL, status);
    batch_seconds[batches] = seconds(CLOCK_MONOTONIC) - started;
    batch_cpu[batches] = seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu_started;
    cpu += batch_cpu[batches];
    running += batch_seconds[batches++];
    check(status, "running " SIGNATURE);
    for (int k = 0; k < num_outputs; k++)
      if (TF_NumDims(values[k]) > 0 && TF_Dim(values[k], 0) != n)
        die(1, "output %s has %lld rows for a batch of %lld", outputs[k].key, (long long)TF_Dim(values[k], 0),
            (long long)n);
    for (int64_t row = 0; row < n; row++) {
      putchar('{');
      for (int k = 0; k < num_outputs; k++) {
        printf(k ? ", \"%s\": " : "\"%s\": ", outputs[k].key);
        print_row(values[k], row);
      }
      puts("}");
    }
    TF_DeleteTensor(text);
    for (int k = 0; k < num_outputs; k++) TF_DeleteTensor(values[k]);
  }
  fflush(stdout);
  fprintf(stderr, "run_export: %lld texts in %lld batches of up to %ld, %.3f s in TF_SessionRun (%.3f s CPU)\n",
          (long long)num_texts, (long long)batches, batch_size, running, cpu);
  if (timings) {
    fputs("run_export: batch seconds:", stderr);
    for (int64_t b = 0; b < batches; b++) fprintf(stderr, " %.6f", batch_seconds[b]);
    fputs("\nrun_export: batch CPU seconds:", stderr);
    for (int64_t b = 0; b < batches; b++) fprintf(stderr, " %.6f", batch_cpu[b]);
    fputc('\n', stderr);
  }
  free(batch_seconds);
  free(batch_cpu);

  TF_CloseSession(session, status);
  TF_DeleteSession(session, status);
  TF_DeleteBuffer(meta_graph);
  TF_DeleteGraph(graph);
  TF_DeleteSessionOptions(options);
  TF_DeleteStatus(status);
  for (int64_t i = 0; i < num_texts; i++) free(texts[i].data);
  free(texts);
  free(version_dir);
  return 0;
}
