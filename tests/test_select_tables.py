"""Long tables in the prompt: the rows the question names (PruneTable), as
records under their column names, and the column names above every part."""
from __future__ import annotations

from engine.cite import Citer
from engine.select import Pack, PruneTable, default_pipeline, render_sources
from engine.select.tables import as_records, table_rows
from test_select_support import cand, context, seg

HEADER = "| Apellido Nombre | Matricula | Cuit | Importe |"
ROWS = [f"| DONOR {k} | {20 + k}.{100 + k}.380 | 20-{20000000 + k}-5 | $ 10.000,00 |"
        for k in range(9)]
LORENZO = "| LORENZO FERNANDO LUIS | 22.608.380 | 20-22608380-5 | $ 15.000,00 |"
QUESTION = "One donor gave $15.000,00. What CUIT is recorded for that donor?"


def table(rows: list[str], header: bool = True, name: str | None = None, ordinal: int = 0):
    lines = ([HEADER, "|---|---|---|---|"] if header else []) + rows
    return seg("\n".join(lines), kind="table", name=name, ordinal=ordinal,
               document_name="campaign_donors.pdf")


def test_the_row_the_question_names_is_kept_with_the_header():
    t = table(ROWS[:4] + [LORENZO] + ROWS[4:])
    kept = PruneTable()([cand(t)], context(QUESTION))[0].kept
    assert [t.text[a:b].strip() for a, b in kept] == [f"{HEADER}\n|---|---|---|---|", LORENZO]
    head, body = table_rows(t.text)
    assert len(head) == 2 and len(body) == 10


def test_a_question_about_the_whole_table_keeps_it_whole():
    t = table(ROWS[:4] + [LORENZO] + ROWS[4:])
    for question in ("Which donor gave the most?", "List every CUIT of a donor who gave $ 10.000,00"):
        assert PruneTable()([cand(t)], context(question))[0].kept is None
    short = table(ROWS[:3] + [LORENZO])              # a few rows: read whole
    assert PruneTable()([cand(short)], context(QUESTION))[0].kept is None
    grid = seg("Planet Moons\nMercury 0\nVenus 0\nEarth 1\nMars 2\nJupiter 95\nSaturn 146\n"
               "Uranus 28", kind="table")           # no pipe rows: left alone
    assert PruneTable()([cand(grid)], context("How many moons has Mars?"))[0].kept is None


def test_a_pulled_out_row_reads_as_a_record_and_is_cited_on_the_page():
    t = table(ROWS[:4] + [LORENZO] + ROWS[4:])
    ctx = context(QUESTION)
    selection = Pack()(PruneTable()([cand(t)], ctx), ctx)
    block = render_sources(selection)
    assert block.splitlines()[1] == ("Apellido Nombre: LORENZO FERNANDO LUIS; Matricula: "
                                     "22.608.380; Cuit: 20-22608380-5; Importe: $ 15.000,00")
    assert "DONOR" not in block
    assert ctx.count_tokens(block) == selection.used_tokens       # the budget counts it as shown
    cited = Citer().cite("The CUIT for that donor is 20-22608380-5.", selection.sources,
                         question=QUESTION)
    assert not cited.declined and LORENZO in cited.citations[0].quote


def test_a_middle_part_of_a_table_shows_its_column_names():
    part = table(ROWS, header=False, name=HEADER, ordinal=3)
    ctx = context("Which donor has matricula 23.103.380?")
    selection = Pack()([cand(part)], ctx)
    lines = render_sources(selection).splitlines()
    assert lines[1:3] == [HEADER, "|---|---|---|---|"] and lines[3] == ROWS[0]
    assert selection.sources[0].text == part.text            # citations index the segment
    assert as_records(selection.sources[0]) is None           # whole: a grid, as written
    first = table(ROWS[:3])
    assert render_sources(Pack()([cand(first)], ctx)).splitlines()[1] == HEADER  # no repeat


def test_prune_table_is_a_default_step():
    assert "prune-table" in default_pipeline().names
