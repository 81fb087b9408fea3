"""Protected characteristics caught at the door: columns whose name or values look like one.

A column is matched by the words of its name (``applicant_age`` → ``applicant``, ``age``; a
pattern ending in ``*`` matches a word's start, so ``relig*`` matches ``religion``), or by
its most frequent values when at least two of them contain a value word (``male``,
``female``). Words, not substrings: ``age`` must not flag ``mortgage`` or ``average``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Characteristic:
    """One protected characteristic: its name and the words that reveal it in a column's name or values."""

    name: str
    name_words: tuple[str, ...]
    value_words: tuple[str, ...] = ()


# The default catalogue (US ECOA / Reg B and EU equality law): compliance officers edit the
# catalogue the service uses; this seeds it.
DEFAULT_CATALOGUE = (
    Characteristic("age", ("age", "birth*", "dob", "born", "yob")),
    Characteristic("sex and gender", ("sex", "gender*"), ("male", "female", "man", "woman", "nonbinary")),
    Characteristic("marital status", ("marital*", "married", "spouse*"), ("married", "divorced", "widowed",
                                                                         "separated", "unmarried")),
    Characteristic("race and ethnicity", ("race", "racial", "ethnic*"), ("white", "black", "asian", "hispanic",
                                                                         "latino", "caucasian")),
    Characteristic("colour", ("colour", "color", "skin")),
    Characteristic("religion", ("relig*", "faith", "church"), ("christian", "muslim", "jewish", "hindu", "buddhist",
                                                              "catholic", "protestant")),
    Characteristic("national origin and citizenship", ("nationality", "national", "citizen*", "foreign*",
                                                       "immigra*", "migrant", "birthplace")),
    Characteristic("receipt of public assistance", ("welfare", "assistance", "benefits")),
    Characteristic("disability", ("disab*", "handicap*", "impair*")),
)


def words(text: str) -> list[str]:
    """Split a column name or value into lower-case words (snake_case, camelCase, spaces, punctuation)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(text))
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


def _matches(word: str, pattern: str) -> bool:
    return word.startswith(pattern[:-1]) if pattern.endswith("*") else word == pattern


def protected_suspects(columns: Mapping[str, Mapping[str, Any]],
                       catalogue: Iterable[Characteristic] = DEFAULT_CATALOGUE) -> list[dict[str, str]]:
    """Return the feature columns (role ``feature``, i.e. no role given) that look like a protected characteristic.

    ``columns`` is a dataset profile's ``columns``: name → {"role", "top": [{"value", "count"}], ...}.
    """
    catalogue = list(catalogue)
    found = []
    for name, info in columns.items():
        if info.get("role") != "feature":
            continue
        name_words = words(name)
        top_words = [set(words(item["value"])) for item in info.get("top") or [] if item.get("value") is not None]
        # A name says more than values: look for a name match in the whole catalogue first.
        by_name = next((c for c in catalogue
                        if any(_matches(w, p) for w in name_words for p in c.name_words)), None)
        if by_name is not None:
            found.append({"column": name, "characteristic": by_name.name, "matched_by": "name"})
            continue
        by_values = next((c for c in catalogue
                          if sum(1 for v in top_words if v & set(c.value_words)) >= 2), None)
        if by_values is not None:
            found.append({"column": name, "characteristic": by_values.name, "matched_by": "values"})
    return found
