"""`tts rescore`: a finished run's candidates chosen again with another verifier, selection or
aggregation, without generating again."""

import json

from cli_helpers import FAST, one_line_error, read_records, tts, write_jsonl


def data(tmp_path, n=4):
    return write_jsonl(tmp_path / "d.jsonl", [{"question": f"What is {i} + 2?", "answer": f"#### {i + 2}"}
                                              for i in range(n)])


def run(tmp_path, model, out, *args):
    r = tts("grade", data(tmp_path), "--out", out, "--policy", model, *FAST, *args)
    assert r.exit_code == 0, r.output
    return read_records(out)


def test_rescoring_with_the_runs_own_verifier_reproduces_its_answers(tiny_model, tmp_path):
    for prm in ("confidence", "judge", "arithmetic+coverage"):
        out = tmp_path / f"bon-{prm}.jsonl"
        before = run(tmp_path, tiny_model, out, "--strategy", "best-of-n", "--n", "4", "--prm", prm)
        again = tmp_path / f"again-{prm}.jsonl"
        r = tts("rescore", out, "--prm", prm, "--out", again, "--policy", tiny_model, "--threads", "2")
        assert r.exit_code == 0, r.output
        after = read_records(again)
        assert [x["answer"] for x in after] == [x["answer"] for x in before]
        assert [[c["step_scores"] for c in x["candidates"]] for x in after] == \
               [[c["step_scores"] for c in x["candidates"]] for x in before]
        assert [x["compute"]["flops"] for x in after] == [x["compute"]["flops"] for x in before]


def test_rescore_chooses_by_the_new_verifier_and_costs_only_its_compute(tiny_model, tmp_path):
    out = tmp_path / "maj.jsonl"
    before = run(tmp_path, tiny_model, out, "--strategy", "majority", "--n", "4")
    new = tmp_path / "judged.jsonl"
    r = tts("rescore", out, "--prm", "judge", "--selection", "max", "--out", new, "--policy", tiny_model,
            "--threads", "2")
    assert r.exit_code == 0, r.output
    after = read_records(new)
    for b, a in zip(before, after):
        assert a["verifier"] == "judge" and a["strategy"] == "best-of-n"
        assert [c["answer"] for c in a["candidates"]] == [c["answer"] for c in b["candidates"]]  # nothing generated
        assert a["compute"]["policy"] == b["compute"]["policy"] and a["compute"]["verifier"]["tokens_evaluated"] > 0
        best = max(a["candidates"], key=lambda c: c["score"])
        assert a["answer"] == best["answer"]  # PRM-Max
    # resumable: a rerun skips what is there
    r = tts("rescore", out, "--prm", "judge", "--selection", "max", "--out", new, "--policy", tiny_model)
    assert r.exit_code == 0 and len(read_records(new)) == len(after)


def test_arithmetic_rescoring_prefers_paths_whose_facts_check(tmp_path):
    from tts_cli.rescore import rescore_record
    from tts_cli.verifiers.arithmetic import ArithmeticVerifier

    def cand(steps, answer):
        return {"answer": answer, "steps": steps, "step_scores": [], "step_confidence": [0.5] * len(steps),
                "finish_reason": "boxed", "answer_method": "boxed"}
    rec = {"key": "k", "id": "1", "problem": "Tom has 3 bags of 4 apples. How many?", "reference": "12",
           "candidates": [cand(["3 * 4 = 13\n\n", "\\boxed{13}"], "13"), cand(["3 * 4 = 13\n\n", "\\boxed{13}"], "13"),
                          cand(["3 * 4 = 12\n\n", "\\boxed{12}"], "12")],
           "compute": {"policy": {"flops": 10.0}, "flops": 10.0}}
    new = rescore_record(rec, ArithmeticVerifier(), (1, 0), selection="vote", aggregation="last",
                         verifier_name="arithmetic")
    assert new["answer"] == "12" and new["correct"]  # the majority stated a false fact
    assert [c["score"] for c in new["candidates"]] == [0.0, 0.0, 1.0]
    assert new["compute"]["flops"] == 10.0  # checking arithmetic costs no model compute


def test_tree_searches_cannot_be_rescored(tiny_model, tmp_path):
    out = tmp_path / "beam.jsonl"
    run(tmp_path, tiny_model, out, "--strategy", "beam", "--n", "2", "--beam-width", "2", "--prm", "confidence")
    one_line_error(tts("rescore", out, "--prm", "arithmetic", "--out", tmp_path / "x.jsonl"), "a beam run",
                   "majority, best-of-n")
    one_line_error(tts("rescore", tmp_path / "d.jsonl", "--prm", "arithmetic", "--out", tmp_path / "x.jsonl"),
                   "not a tts results file")
    assert json.loads((tmp_path / "d.jsonl").read_text().splitlines()[0])  # untouched
