// kner error report (kner/error_report.py): draws the sentences of the page's
// JSON data, filtered by the URL fragment (#type=NAME&kind=KIND&page=N).
// Text only ever reaches the page through textContent.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var TYPES = data.types, KINDS = data.kinds, COLOURS = data.colours;
  var PAGE_SIZE = 50, LONG = 600, CONTEXT = 60, LONG_ENTITY = 24;
  var typeSelect = document.getElementById("filter-type");
  var kindSelect = document.getElementById("filter-kind");
  var rowsBox = document.getElementById("rows");
  var expanded = {};

  function readState() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    var page = parseInt(params.get("page") || "1", 10);
    return { type: params.get("type") || "", kind: params.get("kind") || "", page: page > 0 ? page : 1 };
  }

  function fragment(state) {
    var params = new URLSearchParams();
    if (state.type) params.set("type", state.type);
    if (state.kind) params.set("kind", state.kind);
    if (state.page > 1) params.set("page", String(state.page));
    return "#" + params.toString();
  }

  // entity: [start, end, type, kind, partner start, partner end, partner type]
  function matches(entity, state) {
    var kind = KINDS[entity[3]];
    var kindOk = !state.kind || (state.kind === "errors" ? kind !== "correct" : kind === state.kind);
    return kindOk && (!state.type || TYPES[entity[2]] === state.type);
  }

  function rowMatches(row, state) {
    if (!state.type && !state.kind) return true;
    return row[3].some(function (e) { return matches(e, state); }) ||
      row[4].some(function (e) { return matches(e, state); });
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function describe(entity, side) {
    var kind = KINDS[entity[3]];
    var words = TYPES[entity[2]] + " [" + entity[0] + ", " + entity[1] + "]: " + kind.replace("-", " ");
    if (entity.length > 4) {
      var other = side === "gold" ? "predicted " : "gold ";
      words += "; " + other + TYPES[entity[6]] + " [" + entity[4] + ", " + entity[5] + "]";
    }
    return words;
  }

  function mark(entity, side, state) {
    var node = element("mark");
    node.dataset.type = TYPES[entity[2]];
    node.dataset.kind = KINDS[entity[3]];
    node.dataset.start = String(entity[0]);
    node.dataset.end = String(entity[1]);
    node.style.setProperty("--c", COLOURS[entity[2]]);
    node.title = describe(entity, side);
    if ((state.type || state.kind) && !matches(entity, state)) node.classList.add("dim");
    if (entity[1] - entity[0] >= LONG_ENTITY) node.classList.add("long");
    return node;
  }

  // Entities sorted by start, longest first; each goes to the first layer it
  // does not cross, so that a layer nests (and one <mark> is one entity).
  function layers(entities) {
    var sorted = entities.slice().sort(function (a, b) { return a[0] - b[0] || b[1] - a[1] || a[2] - b[2]; });
    var result = [];
    sorted.forEach(function (entity) {
      var home = result.find(function (layer) {
        return layer.every(function (o) { return entity[0] > o[1] || entity[1] <= o[1]; });
      });
      if (home) home.push(entity); else result.push([entity]);
    });
    return result.length ? result : [[]];
  }

  // Text from `from` to `to` (exclusive) with the nested marks of `entities`.
  function drawStretch(parent, text, from, to, entities, side, state) {
    var stack = [{ node: parent, end: Infinity }], position = from;
    function top() { return stack[stack.length - 1]; }
    function close() {
      var done = stack.pop();
      done.node.appendChild(document.createTextNode(text.slice(position, done.end + 1)));
      position = done.end + 1;
    }
    entities.forEach(function (entity) {
      if (entity[0] < from || entity[1] >= to) return;
      while (stack.length > 1 && top().end < entity[0]) close();
      top().node.appendChild(document.createTextNode(text.slice(position, entity[0])));
      position = entity[0];
      var node = mark(entity, side, state);
      top().node.appendChild(node);
      stack.push({ node: node, end: entity[1] });
    });
    while (stack.length > 1) close();
    parent.appendChild(document.createTextNode(text.slice(position, to)));
  }

  // The stretches of a long text around its entities (all of it when short).
  function stretches(text, entities, full) {
    if (full || text.length <= LONG) return [[0, text.length]];
    var spans = entities.map(function (e) {
      return [Math.max(0, e[0] - CONTEXT), Math.min(text.length, e[1] + 1 + CONTEXT)];
    }).sort(function (a, b) { return a[0] - b[0]; });
    if (!spans.length) return [[0, Math.min(text.length, 2 * CONTEXT)]];
    var merged = [spans[0].slice()];
    spans.slice(1).forEach(function (s) {
      var last = merged[merged.length - 1];
      if (s[0] <= last[1]) last[1] = Math.max(last[1], s[1]); else merged.push(s.slice());
    });
    return merged;
  }

  function pane(side, text, entities, windows, state) {
    var box = element("div", "pane " + side);
    box.appendChild(element("h3", "", side));
    layers(entities).forEach(function (layer, index) {
      var line = element("div", index ? "text crossing" : "text");
      windows.forEach(function (w, i) {
        if (i === 0 && w[0] > 0) line.appendChild(element("span", "gap", "…"));
        drawStretch(line, text, w[0], w[1], layer, side, state);
        var next = windows[i + 1];
        if (next || w[1] < text.length) line.appendChild(element("span", "gap", next ? " … " : "…"));
      });
      box.appendChild(line);
    });
    return box;
  }

  function drawRow(row, state) {
    var index = row[0], text = row[2], gold = row[3], predicted = row[4], errors = row[5];
    var article = element("article", "row");
    article.dataset.index = String(index);
    article.dataset.errors = String(errors);
    var head = element("header");
    head.appendChild(element("span", "where", row[1]));
    head.appendChild(element("span", errors ? "errors" : "clean", errors ? errors + (errors === 1 ? " error" : " errors") : "correct"));
    head.appendChild(element("span", "length", text.length.toLocaleString() + " characters"));
    var full = !!expanded[index];
    if (text.length > LONG) {
      var button = element("button", "", full ? "show the entities' surroundings" : "show all " + text.length.toLocaleString() + " characters");
      button.type = "button";
      button.addEventListener("click", function () {
        expanded[index] = !full;
        article.replaceWith(drawRow(row, state));
      });
      head.appendChild(button);
      if (full) article.classList.add("full");
    }
    article.appendChild(head);
    var windows = stretches(text, gold.concat(predicted), full);
    var pair = element("div", "pair");
    pair.appendChild(pane("gold", text, gold, windows, state));
    pair.appendChild(pane("predicted", text, predicted, windows, state));
    article.appendChild(pair);
    return article;
  }

  function drawPager(nav, state, pages) {
    nav.textContent = "";
    if (pages <= 1) return;
    function link(label, page) {
      if (page < 1 || page > pages || page === state.page) return element("span", "off", label);
      var a = element("a", "", label);
      a.href = fragment({ type: state.type, kind: state.kind, page: page });
      return a;
    }
    nav.appendChild(link("« first", 1));
    nav.appendChild(link("‹ previous", state.page - 1));
    nav.appendChild(element("span", "", "page " + state.page + " of " + pages));
    nav.appendChild(link("next ›", state.page + 1));
    nav.appendChild(link("last »", pages));
  }

  function draw() {
    var state = readState();
    typeSelect.value = TYPES.indexOf(state.type) >= 0 ? state.type : "";
    kindSelect.value = state.kind;
    var rows = data.rows.filter(function (row) { return rowMatches(row, state); });
    var pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
    state.page = Math.min(state.page, pages);
    var first = (state.page - 1) * PAGE_SIZE;
    var fragmentNodes = document.createDocumentFragment();
    rows.slice(first, first + PAGE_SIZE).forEach(function (row) { fragmentNodes.appendChild(drawRow(row, state)); });
    rowsBox.textContent = "";
    rowsBox.appendChild(fragmentNodes);
    var shown = rows.length ? (first + 1) + "–" + Math.min(first + PAGE_SIZE, rows.length) + " of " : "0 of ";
    document.getElementById("shown").textContent =
      shown + rows.length + " matching sentences (" + data.rows.length + " in all)";
    drawPager(document.getElementById("pager-top"), state, pages);
    drawPager(document.getElementById("pager-bottom"), state, pages);
  }

  function onFilter() {
    location.hash = fragment({ type: typeSelect.value, kind: kindSelect.value, page: 1 });
  }

  typeSelect.addEventListener("change", onFilter);
  kindSelect.addEventListener("change", onFilter);
  window.addEventListener("hashchange", draw);
  draw();
})();
