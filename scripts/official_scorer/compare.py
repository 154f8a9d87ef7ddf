"""Compare `synthdeid evaluate --json` with the official MEDDOCAN script, to 4 decimals.

    python3 compare.py GOLD_DIR PRED_DIR...

Needs `classes.py` of the official script (github.com/PlanTL-GOB-ES/MEDDOCAN-Evaluation-Script) beside this
file (not committed here: fetch it yourself) and a release build of synthdeid. Make prediction sets with
`python3 perturb.py GOLD_DIR OUT_BASE SEED`.
"""
import json, os, subprocess, sys

here = os.path.dirname(os.path.abspath(__file__))
ours_bin = os.path.join(here, '../../target/release/synthdeid')
gold = sys.argv[1]
ok = True
print('| pred set | metric | ours P / R / F1 | ours TP/FP/FN | official P / R / F1 | official TP/FP/FN | official docs | |')
print('|---|---|---|---|---|---|---|---|')
for pred in sys.argv[2:]:
    off = json.loads(subprocess.run(['python3', os.path.join(here, 'driver.py'), gold, pred], capture_output=True, text=True, check=True).stdout)
    r = subprocess.run([ours_bin, 'evaluate', '--gold', gold, '--pred', pred, '--json'], capture_output=True, text=True)
    name = pred.rstrip('/').split('/')[-1]
    if r.returncode != 0:
        print(f'| {name} | synthdeid refused the input: {r.stderr.strip()} |')
        continue
    ours = json.loads(r.stdout)
    for m in ['entity_strict', 'span_strict', 'span_merged']:
        o, u = off[m], ours[m]['micro']
        same = all(f"{o[k]:.4f}" == f"{u[k]:.4f}" for k in ['precision', 'recall', 'f1']) and all(o[k] == u[k] for k in ['tp', 'fp', 'fn'])
        ok &= same or name.startswith('missing')
        print(f"| {name} | {m} | {u['precision']:.4f} / {u['recall']:.4f} / {u['f1']:.4f} | {u['tp']}/{u['fp']}/{u['fn']} | "
              f"{o['precision']:.4f} / {o['recall']:.4f} / {o['f1']:.4f} | {o['tp']}/{o['fp']}/{o['fn']} | {o['docs']} | {'same' if same else 'DIFF'} |")
print('ALL SAME (missing-document sets differ on purpose)' if ok else 'SOME DIFFER')
