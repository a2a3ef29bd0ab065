"""Tag schemes: converting entity spans to per-character tags and back.

Four schemes are supported, with tags `O` and `<prefix>-<type>`:

- `bio` (IOB2): B begins an entity, I continues it.
- `bios`: as bio, plus S for a one-character entity.
- `bioes`: as bios, plus E ending every entity longer than one character.
- `bmes`: as bioes, with M (middle) in place of I.

The grammar of each scheme is defined once, by `transition_problem`: which
tag may follow which, and which may open or close a sentence. Two rules
cover all four schemes:

- a continuing tag (I-, M-, E-) must follow an opening tag (B-, I-, M-) of
  the same type;
- a tag that must be continued (bios: B-; bioes, bmes: B-, I-, M-) must be
  followed by a continuing tag of the same type (bios writes a
  one-character entity as S-, bioes and bmes close every entity with E- or
  S-).

The strict reader (`tags_to_spans(..., strict=True)`) and the CRF's
allowed transitions, start and end tags (`kner.models.crf.allowed_transitions`)
are both derived from it, so Viterbi decoding produces exactly the sequences
the strict reader accepts.

Files may also be in IOB1 (`iob1`, CoNLL-2003's original release: I-
begins an entity, and B- only one that directly follows an entity of the
same type), which is read by converting it to IOB2 (`bio`) tags of the same
spans (`iob1_to_iob2`); kner writes and predicts the four schemes above.

Reading is strict by default, which is what gold data needs: the first
grammar violation raises `TagError`. With `strict=False` (`--lenient` on the
command line) sequences are repaired instead (an orphan inside tag begins an
entity, an entity left open ends at its last tag) and the violations are
counted; that suits model output.

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
IOB1 = "iob1"
# What a file may be in: the schemes, plus IOB1, read as IOB2 (`iob1_to_iob2`).
INPUT_SCHEMES = (*SCHEMES, IOB1)


class TagError(ValueError):
    """An invalid tag or tag sequence; `position` indexes the offending tag.
    `repair` says what lenient reading does instead (None for an unknown tag,
    which nothing repairs)."""

    def __init__(self, position: int, message: str, repair: str | None = None):
        self.position = position
        self.message = message
        self.repair = repair
        super().__init__(f"position {position}: {message}")


class Problem(NamedTuple):
    """A grammar violation: what is wrong, and what lenient reading does."""

    message: str
    repair: str


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


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """IOB1 tags as the IOB2 (`bio`) tags of the same spans: an I- tag that
    does not continue an entity of its type begins one, so it becomes B-.
    Other tags are kept as they are (an unknown one fails when read).

    >>> iob1_to_iob2(["I-PER", "I-PER", "B-PER", "O", "I-LOC"])
    ['B-PER', 'I-PER', 'B-PER', 'O', 'B-LOC']
    """
    converted = []
    previous_type = None  # the type of the entity the previous tag is in
    for tag in tags:
        prefix, dash, entity_type = tag.partition("-")
        if prefix == "I" and dash and entity_type != previous_type:
            tag = f"B-{entity_type}"
        converted.append(tag)
        previous_type = entity_type if prefix in ("B", "I") and dash else None
    return converted


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


def _grammar_problem(
    previous: tuple[str, str | None] | None, current: tuple[str, str | None] | None, names: tuple, roles: _Roles
) -> Problem | None:
    """`transition_problem` on split tags (None: the sentence boundary);
    `names` are the two tags as written, for the message."""
    previous_tag, tag = names
    opening = {roles.begin, roles.inside}
    continuing = {roles.inside, roles.end} - {None}
    must_continue = opening if roles.end else {roles.begin} if roles.single else set()
    if current is not None and current[0] in continuing:
        if previous is None or previous[0] not in opening:
            return Problem(
                f"{tag!r} continues no entity (expected {roles.begin}-{current[1]} before it)",
                "starts the entity at this tag",
            )
        if previous[1] != current[1]:
            return Problem(
                f"{previous_tag!r} followed by {tag!r}: entity type changes inside an entity",
                f"ends the {previous[1]} entity before this tag and starts a {current[1]} entity here",
            )
        return None
    if previous is not None and previous[0] in must_continue:
        followed = f"followed by {tag!r}" if tag is not None else "ends the sentence"
        if roles.end:
            single = f" (a one-character entity is {roles.single}-{previous[1]})" if previous[0] == roles.begin else ""
            message = f"entity not closed with {roles.end}-{previous[1]}{single}"
        else:
            message = f"a one-character entity is {roles.single}-{previous[1]}"
        return Problem(f"{previous_tag!r} {followed}: {message}", f"ends the entity at {previous_tag!r}")
    return None


def transition_problem(previous: str | None, tag: str | None, scheme: str) -> Problem | None:
    """The grammar of `scheme`: why `tag` may not follow `previous`, or None
    when it may. None stands for the sentence boundary: `(None, tag)` asks
    whether a sentence may start with `tag`, `(tag, None)` whether it may end
    with it. This is the one definition of valid sequences: `tags_to_spans`
    (strict) and `kner.models.crf.allowed_transitions` both use it.

    Raises ValueError for a tag that is not valid in `scheme`.

    >>> transition_problem("B-name", "O", "bios").message
    "'B-name' followed by 'O': a one-character entity is S-name"
    """
    roles = _roles(scheme)
    previous_split = None if previous is None else split_tag(previous, scheme)
    current_split = None if tag is None else split_tag(tag, scheme)
    return _grammar_problem(previous_split, current_split, (previous, tag), roles)


def tags_to_spans(tags: Sequence[str], scheme: str, strict: bool = True) -> tuple[list[Span], int]:
    """Reads the entity spans of a tag sequence.

    Returns the spans and the number of grammar violations repaired (see
    `transition_problem`); with `strict=True` (the default, for gold data)
    the first violation raises `TagError` instead, and the count is always 0.
    Unknown tags always raise.

    Lenient reading: after a B- or inside tag an entity is open, and a tag
    continues it when it is an inside or end tag of the same type; any other
    non-`O` tag starts an entity; an entity ends at an end or single tag, or
    before a tag that does not continue it.
    """
    roles = _roles(scheme)
    parsed = []
    for position, tag in enumerate(tags):
        try:
            parsed.append(split_tag(tag, scheme))
        except ValueError as error:
            raise TagError(position, str(error)) from None
    repairs = 0
    bounded = [None, *parsed, None]
    names = [None, *tags, None]
    for position in range(len(tags) + 1):
        problem = _grammar_problem(bounded[position], bounded[position + 1], names[position : position + 2], roles)
        if problem is not None:
            if strict:
                raise TagError(min(position, len(tags) - 1), problem.message, problem.repair)
            repairs += 1
    return _read_spans(parsed, roles), repairs


def _read_spans(parsed: list[tuple[str, str | None]], roles: _Roles) -> list[Span]:
    """The spans of split tags, read leniently (see `tags_to_spans`)."""
    continuing = {roles.inside, roles.end} - {None}
    spans = []
    open_start, open_type = None, None
    for position, (prefix, entity_type) in enumerate(parsed):
        if open_type is not None:
            if prefix in continuing and entity_type == open_type:
                if prefix == roles.end:
                    spans.append(Span(open_start, position, open_type))
                    open_start, open_type = None, None
                continue
            spans.append(Span(open_start, position - 1, open_type))
            open_start, open_type = None, None
        if prefix in (roles.single, roles.end):
            spans.append(Span(position, position, entity_type))
        elif prefix != OUTSIDE:
            open_start, open_type = position, entity_type
    if open_type is not None:
        spans.append(Span(open_start, len(parsed) - 1, open_type))
    return spans
