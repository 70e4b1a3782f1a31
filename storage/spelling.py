"""British and American spellings of the same word, so a question finds
text written in the other one.

Asked "Under what licence is the Rcpp package released?", keyword search
missed the FAQ's "licensed under the terms of the GNU GPL 2 or later": the
index holds "licens", the question "licenc". Folio searches both spellings
(fts.py) and compares words in one (engine/text.py). The list is explicit:
suffix rules alone would turn "reference" into "referense" and "premise"
into "premize".
"""
from __future__ import annotations

# British -> American, base forms; inflections are derived below.
_WORDS = {
    "licence": "license", "defence": "defense", "offence": "offense", "pretence": "pretense",
    "colour": "color", "behaviour": "behavior", "favour": "favor", "honour": "honor",
    "labour": "labor", "neighbour": "neighbor", "flavour": "flavor", "harbour": "harbor",
    "rumour": "rumor", "vapour": "vapor", "armour": "armor", "endeavour": "endeavor",
    "humour": "humor", "centre": "center", "metre": "meter", "litre": "liter",
    "fibre": "fiber", "theatre": "theater", "calibre": "caliber", "catalogue": "catalog",
    "dialogue": "dialog", "analogue": "analog", "programme": "program", "grey": "gray",
    "aluminium": "aluminum", "judgement": "judgment", "acknowledgement": "acknowledgment",
    "artefact": "artifact", "cheque": "check", "tyre": "tire", "sceptical": "skeptical",
    "ageing": "aging", "mould": "mold", "plough": "plow", "fulfil": "fulfill",
    "enrol": "enroll", "instalment": "installment", "modelling": "modeling",
    "modelled": "modeled", "labelling": "labeling", "labelled": "labeled",
    "travelling": "traveling", "travelled": "traveled", "cancelling": "canceling",
    "cancelled": "canceled", "signalling": "signaling", "signalled": "signaled",
    "levelling": "leveling", "tunnelling": "tunneling", "marshalling": "marshaling",
    "marshalled": "marshaled", "counsellor": "counselor",
    "analyse": "analyze", "paralyse": "paralyze", "catalyse": "catalyze",
}
# -ise verbs (and their -isation nouns) spelt -ize in American English
_ISE = """
optim normal initial serial organ recogn custom minim maxim summar visual synchron
parametr token author util priorit categor standard central final special general
local global real emphas character apolog capital critic econom familiar formal
harmon legal modern neutral penal popular public stabil steril symbol
vector virtual memor random sanit canonical lexical linear polar quant
""".split()
_ISE_FORMS = ("ise", "ised", "ises", "ising", "isation", "isations", "iser", "isers")


def _inflections(british: str, american: str) -> list[tuple[str, str]]:
    """Plural and verb forms of a pair: "licences"/"licenses",
    "licenced"/"licensed", "centred"/"centered", "coloured"/"colored"."""
    if british.endswith("re") and american.endswith("er"):          # centre/center
        return [(british + "s", american + "s"), (british + "d", american + "ed"),
                (british[:-1] + "ing", american + "ing")]
    if british.endswith("e") and american.endswith("e"):            # licence/license
        return [(british + "s", american + "s"), (british + "d", american + "d"),
                (british[:-1] + "ing", american[:-1] + "ing")]
    if british.endswith(("ed", "ing")):                             # modelled/modeled
        return []
    return [(british + "s", american + "s"), (british + "ed", american + "ed"),
            (british + "ing", american + "ing")]


def _table() -> dict[str, str]:
    table = dict(_WORDS)
    for british, american in _WORDS.items():
        for b, a in _inflections(british, american):
            table.setdefault(b, a)
    for root in _ISE:
        for form in _ISE_FORMS:
            table[root + form] = root + "iz" + form[2:]
    return table


BRITISH_TO_AMERICAN = _table()
_AMERICAN_TO_BRITISH = {v: k for k, v in BRITISH_TO_AMERICAN.items()}


def american(word: str) -> str:
    """The American spelling of a lower-case word (the word if it has none)."""
    return BRITISH_TO_AMERICAN.get(word, word)


def variants(word: str) -> list[str]:
    """The other spelling of a lower-case word, if it has one."""
    other = BRITISH_TO_AMERICAN.get(word) or _AMERICAN_TO_BRITISH.get(word)
    return [other] if other and other != word else []
