"""Runs the official MEDDOCAN classes (copied verbatim from PlanTL-GOB-ES/MEDDOCAN-Evaluation-Script
classes.py; printing code trimmed) and prints full-precision micro P/R/F1 plus TP/FP/FN as JSON."""
import contextlib, io, json, os, sys
from classes import BratAnnotation, EvaluateSubtrack1, EvaluateSubtrack2, EvaluateSubtrack2merged, Evaluate

def load(d):
    out = {}
    for fn in os.listdir(d):
        if fn.endswith(".ann"):
            a = BratAnnotation(os.path.join(d, fn))
            out[a.id] = a
    return out

gold, system = load(sys.argv[1]), load(sys.argv[2])
res = {}
for name, cls in [("entity_strict", EvaluateSubtrack1), ("span_strict", EvaluateSubtrack2), ("span_merged", EvaluateSubtrack2merged)]:
    with contextlib.redirect_stdout(io.StringIO()):
        e = cls(system, gold)
    p, r = e.micro_precision(), e.micro_recall()
    res[name] = dict(precision=p, recall=r, f1=Evaluate.F_beta(r, p),
                     tp=sum(len(t) for t in e.tp), fp=sum(len(t) for t in e.fp), fn=sum(len(t) for t in e.fn),
                     docs=len(e.doc_ids))
print(json.dumps(res))
