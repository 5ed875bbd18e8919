"""answers_match: the equivalence that voting and grading share."""

import pytest

from tts_cli.answers import answers_match, extract_answer


@pytest.mark.parametrize("a,b", [
    ("\\frac12", "0.5"), ("\\dfrac{1}{2}", "\\frac{1}{2}"), ("0.50", "\\frac12"),
    ("30^\\circ", "30"), ("30°", "30"), ("\\text{(B)}", "(B)"), ("\\text{Evelyn}", "Evelyn"),
    ("025", "25"), ("1,000", "1000"), ("(1,2)", "(1, 2)"), ("[0,1)", "[0, 1)"),
    ("2\\sqrt{2}", "\\sqrt{8}"), ("\\frac{\\pi}{2}", "\\pi/2"), ("18", "18.0"),
])
def test_equivalent_answers_match(a, b):
    assert answers_match(a, b)
    assert answers_match(b, a)


@pytest.mark.parametrize("a,b", [
    ("3", "4"), ("(1,2)", "(2,1)"), ("[0,1)", "[0,1]"), ("x+1", "x-1"), ("\\frac12", "2"),
    ("1,000", "1"), ("", "1"), (None, "1"),
])
def test_different_answers_do_not_match(a, b):
    assert not answers_match(a, b)


def test_extraction_prefers_last_boxed_and_marks_fallbacks():
    e = extract_answer("first \\boxed{1} then \\boxed{\\frac{1}{2}} done")
    assert (e.answer, e.method, e.is_fallback) == ("\\frac{1}{2}", "boxed", False)
    e = extract_answer("So the answer is 42.")
    assert (e.answer, e.is_fallback) == ("42", True)
    e = extract_answer("we get 3 and then 5")
    assert (e.answer, e.method) == ("5", "last_number")
    assert extract_answer("no numbers").answer is None


def test_off_the_main_thread_a_hostile_answer_cannot_hang_the_check():
    # tts serve compares answers on its search thread, where math-verify's signal-based time
    # limits do not work; there the check runs in a child process that has them
    import threading
    out = {}

    def check():
        out["tower"] = answers_match("9^{9^{9}}", "1")
        out["half"] = answers_match("\\frac{1}{2}", "0.5")
        out["pair"] = answers_match("(1,2)", "(2,1)")
    worker = threading.Thread(target=check, daemon=True)
    worker.start()
    worker.join(300)  # a safety net for the suite, not a timing goal: unfixed, this never returns
    assert not worker.is_alive(), "the answer check hung"
    assert out == {"tower": False, "half": True, "pair": False}
