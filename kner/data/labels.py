"""The label vocabulary: tag strings of one scheme and their integer ids.

Example:

```python
from kner.data.labels import LabelVocab
from kner.data.files import write_text
from kner.data.spans import Span

vocab = LabelVocab.from_types(["name", "address"], "bio")
vocab.tags  # ["O", "B-address", "I-address", "B-name", "I-name"]
ids = vocab.encode([Span(0, 1, "name")], 3)  # [3, 4, 0]
vocab.decode(ids)  # ([Span(0, 1, "name")], 0)
vocab.save("labels.json")
assert LabelVocab.load("labels.json") == vocab
```
"""

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from kner.data.files import write_text
from kner.data.spans import Span
from kner.data.tags import (
    OUTSIDE,
    SCHEMES,
    scheme_prefixes,
    spans_to_tags,
    split_tag,
    tags_to_spans,
)
from kner.errors import InputError


class LabelVocab:
    """Maps the tags of `scheme` to ids; `O` is always id 0.

    Build it with `from_types` or `from_sentences`, which order tags as `O`,
    then for each type in sorted order its prefixes in the scheme's order
    (bio: B, I; bios: B, I, S; bioes: B, I, E, S; bmes: B, M, E, S). A
    loaded vocabulary keeps the saved order, so ids match a trained model.
    """

    def __init__(self, tags: Sequence[str], scheme: str):
        if scheme not in SCHEMES:
            raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {SCHEMES}")
        types = set()
        for tag in tags:
            entity_type = split_tag(tag, scheme)[1]
            if entity_type is not None:
                types.add(entity_type)
        if not tags or tags[0] != OUTSIDE:
            raise ValueError(f"the first tag must be {OUTSIDE!r}, got {list(tags)[:1]}")
        if len(set(tags)) != len(tags):
            raise ValueError("tags must not repeat")
        self.scheme = scheme
        self.tags = list(tags)
        self.types = sorted(types)
        self._ids = {tag: index for index, tag in enumerate(self.tags)}

    @classmethod
    def from_types(cls, types: Iterable[str], scheme: str) -> "LabelVocab":
        """The vocabulary of every prefix of `scheme` for each type."""
        prefixes = scheme_prefixes(scheme)
        tags = [f"{prefix}-{t}" for t in sorted(set(types)) for prefix in prefixes]
        return cls([OUTSIDE, *tags], scheme)

    @classmethod
    def from_sentences(cls, sentences: Iterable, scheme: str) -> "LabelVocab":
        """The vocabulary of the entity types in labelled `sentences`."""
        types = {span.type for s in sentences for span in s.spans or ()}
        return cls.from_types(types, scheme)

    def __len__(self) -> int:
        return len(self.tags)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelVocab):
            return NotImplemented
        return (self.scheme, self.tags) == (other.scheme, other.tags)

    def __repr__(self) -> str:
        return f"LabelVocab(scheme={self.scheme!r}, tags={self.tags!r})"

    def tag_to_id(self, tag: str) -> int:
        """The id of `tag`; raises KeyError for a tag not in the vocabulary."""
        if tag not in self._ids:
            raise KeyError(f"tag {tag!r} is not in the label vocabulary")
        return self._ids[tag]

    def id_to_tag(self, index: int) -> str:
        """The tag with id `index`."""
        return self.tags[index]

    def encode(self, spans: Iterable[Span], length: int) -> list[int]:
        """Tag ids for `length` characters with entity `spans`."""
        return [self.tag_to_id(tag) for tag in spans_to_tags(spans, length, self.scheme)]

    def decode(self, ids: Iterable[int], strict: bool = False) -> tuple[list[Span], int]:
        """Spans from tag ids, by default repairing invalid sequences (as
        model output may have); returns the spans and the repair count."""
        tags = [self.tags[int(index)] for index in ids]
        return tags_to_spans(tags, self.scheme, strict=strict)

    def save(self, path: str | Path) -> None:
        """Writes `{"scheme": ..., "tags": [...]}` as JSON."""
        content = {"scheme": self.scheme, "tags": self.tags}
        write_text(path, json.dumps(content, ensure_ascii=False, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "LabelVocab":
        """Reads a vocabulary written by `save`; bad files raise InputError."""
        try:
            content = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(content["tags"], content["scheme"])
        except OSError as error:
            raise InputError.from_os_error(path, error) from None
        except (ValueError, KeyError, TypeError) as error:
            message = f"not a label vocabulary ({error})"
            raise InputError(path, None, message) from None
