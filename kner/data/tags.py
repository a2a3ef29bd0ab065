"""Tag schemes: converting entity spans to per-character tags and back.

Four schemes are supported, with tags `O` and `<prefix>-<type>`:

- `bio` (IOB2): B begins an entity, I continues it.
- `bios`: as bio, plus S for a one-character entity.
- `bioes`: as bios, plus E ending every entity longer than one character.
- `bmes`: as bioes, with M (middle) in place of I.

Reading is strict by default, which is what gold data needs: an invalid
sequence (an I-/M-/E- tag that continues no entity, a type change inside an
entity, an entity that a scheme with E never closes, a lone B- where bios
wants S-) raises `TagError`. With `strict=False` such sequences are
repaired instead (an orphan inside tag begins an entity, an unclosed entity
ends at its last tag) and the repairs are counted; that suits model output.

Example:

```python
from kner.data.spans import Span
from kner.data.tags import spans_to_tags, tags_to_spans

tags = spans_to_tags([Span(1, 3, "name")], 5, "bioes")
# ["O", "B-name", "I-name", "E-name", "O"]
tags_to_spans(tags, "bioes")  # ([Span(1, 3, "name")], 0)
tags_to_spans(["O", "I-name", "I-name"], "bio", strict=False)
# ([Span(1, 2, "name")], 1)
```
"""

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from kner.data.spans import Span, flatten_spans

OUTSIDE = "O"


class _Roles(NamedTuple):
    begin: str
    inside: str
    end: str | None
    single: str | None


_ROLES = {
    "bio": _Roles("B", "I", None, None),
    "bios": _Roles("B", "I", None, "S"),
    "bioes": _Roles("B", "I", "E", "S"),
    "bmes": _Roles("B", "M", "E", "S"),
}
SCHEMES = tuple(_ROLES)


class TagError(ValueError):
    """An invalid tag or tag sequence; `position` indexes the offending tag."""

    def __init__(self, position: int, message: str):
        self.position = position
        self.message = message
        super().__init__(f"position {position}: {message}")


def _roles(scheme: str) -> _Roles:
    if scheme not in _ROLES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {SCHEMES}")
    return _ROLES[scheme]


def scheme_prefixes(scheme: str) -> tuple[str, ...]:
    """The entity prefixes of a scheme in a fixed order, e.g. bmes: B, M, E, S."""
    return tuple(prefix for prefix in _roles(scheme) if prefix)


def split_tag(tag: str, scheme: str) -> tuple[str, str | None]:
    """Splits `B-name` into `("B", "name")` and `O` into `("O", None)`.

    Only the first `-` separates, so types may contain `-`. Raises
    ValueError for a tag that is not valid in `scheme`.
    """
    if tag == OUTSIDE:
        return OUTSIDE, None
    prefix, dash, entity_type = tag.partition("-")
    prefixes = scheme_prefixes(scheme)
    if prefix == OUTSIDE:
        raise ValueError(f"tag {tag!r}: O takes no entity type")
    if prefix not in prefixes:
        allowed = ", ".join((OUTSIDE, *prefixes))
        raise ValueError(f"unknown tag prefix {prefix!r} in {tag!r} (the {scheme} scheme uses {allowed})")
    if not dash or not entity_type:
        raise ValueError(f"tag {tag!r} has no entity type")
    return prefix, entity_type


def detect_scheme(tags: Iterable[str]) -> str:
    """Guesses the scheme from the prefixes used: M means bmes, E bioes,
    S without E bios, anything else bio."""
    prefixes = {tag.partition("-")[0] for tag in tags if "-" in tag}
    if "M" in prefixes:
        return "bmes"
    if "E" in prefixes:
        return "bioes"
    if "S" in prefixes:
        return "bios"
    return "bio"


def spans_to_tags(spans: Iterable[Span], length: int, scheme: str) -> list[str]:
    """Tags `length` characters with `spans` in `scheme`.

    Spans nested inside another are dropped (see `flatten_spans`); spans
    outside `0..length-1` raise ValueError.
    """
    roles = _roles(scheme)
    tags = [OUTSIDE] * length
    for start, end, entity_type in flatten_spans(spans)[0]:
        if start < 0 or end >= length or start > end:
            raise ValueError(f"span [{start}, {end}] is outside length {length}")
        tags[start : end + 1] = [f"{roles.inside}-{entity_type}"] * (end - start + 1)
        if start == end and roles.single:
            tags[start] = f"{roles.single}-{entity_type}"
            continue
        tags[start] = f"{roles.begin}-{entity_type}"
        if roles.end:
            tags[end] = f"{roles.end}-{entity_type}"
    return tags


def tags_to_spans(tags: Sequence[str], scheme: str, strict: bool = True) -> tuple[list[Span], int]:
    """Reads the entity spans of a tag sequence.

    Returns the spans and the number of repairs made; with `strict=True`
    (the default, for gold data) the first invalid tag raises `TagError`
    instead, and the count is always 0. Unknown tags always raise.
    """
    roles = _roles(scheme)
    continuing = {roles.inside, roles.end}
    spans = []
    repairs = 0
    open_start, open_type = None, None

    def problem(position: int, message: str) -> None:
        nonlocal repairs
        if strict:
            raise TagError(position, message)
        repairs += 1

    def close(position: int, next_tag: str | None) -> None:
        """Ends the open entity before `position`, which `next_tag` does not
        continue; checks the scheme allows an entity to end there."""
        previous = tags[position - 1]
        followed = f"followed by {next_tag!r}" if next_tag else "ends the sentence"
        if roles.end:
            problem(
                min(position, len(tags) - 1),
                f"{previous!r} {followed}: entity not closed with {roles.end}-{open_type}",
            )
        elif roles.single and open_start == position - 1:
            problem(
                min(position, len(tags) - 1),
                f"{previous!r} {followed}: a one-character entity is {roles.single}-{open_type}",
            )
        spans.append(Span(open_start, position - 1, open_type))

    for position, tag in enumerate(tags):
        try:
            prefix, entity_type = split_tag(tag, scheme)
        except ValueError as error:
            raise TagError(position, str(error)) from None
        if open_type is not None:
            if prefix in continuing and entity_type == open_type:
                if prefix == roles.end:
                    spans.append(Span(open_start, position, open_type))
                    open_start, open_type = None, None
                continue
            if prefix in continuing:
                problem(
                    position,
                    f"{tags[position - 1]!r} followed by {tag!r}: entity type changes inside an entity",
                )
            close(position, tag)
            open_start, open_type = None, None
        elif prefix in continuing:
            problem(
                position,
                f"{tag!r} continues no entity (expected {roles.begin}-{entity_type} before it)",
            )
        if prefix in (roles.single, roles.end):
            spans.append(Span(position, position, entity_type))
        elif prefix in (roles.begin, roles.inside):
            open_start, open_type = position, entity_type
    if open_type is not None:
        close(len(tags), None)
    return spans, repairs
