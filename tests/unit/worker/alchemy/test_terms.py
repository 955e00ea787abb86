from openhorde.worker.alchemy.terms import TERMS


def test_every_category_has_distinct_non_empty_terms() -> None:
    assert {"artists", "mediums", "movements", "flavors"} <= set(TERMS)
    for terms in TERMS.values():
        assert terms and all(term.strip() == term and term for term in terms)
        assert len(set(terms)) == len(terms)
