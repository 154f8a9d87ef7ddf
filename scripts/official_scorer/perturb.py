"""Writes perturbed prediction sets (BRAT) for a gold BRAT dir: python3 perturb.py GOLD OUTBASE SEED"""
import os, random, sys

gold_dir, out_base, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])

def read(d):
    docs = {}
    for fn in sorted(os.listdir(d)):
        if not fn.endswith('.ann'): continue
        i = fn[:-4]
        text = open(os.path.join(d, i + '.txt'), encoding='utf-8').read()
        spans = []
        for line in open(os.path.join(d, fn), encoding='utf-8'):
            if line.startswith('T'):
                lab, s, e = line.split('\t')[1].split()
                spans.append([int(s), int(e), lab])
        docs[i] = (text, sorted(spans))
    return docs

gold = read(gold_dir)
labels = sorted({s[2] for t, sp in gold.values() for s in sp})

def write(name, preds, skip=()):
    d = os.path.join(out_base, name)
    os.makedirs(d, exist_ok=True)
    for i, (text, spans) in preds.items():
        if i in skip: continue
        src = os.path.abspath(os.path.join(gold_dir, i + '.txt'))
        dst = os.path.join(d, i + '.txt')
        if not os.path.lexists(dst): os.symlink(src, dst)
        with open(os.path.join(d, i + '.ann'), 'w', encoding='utf-8') as f:
            for n, (s, e, lab) in enumerate(spans, 1):
                frag = text[s:e].replace('\n', ' ').replace('\t', ' ')
                f.write(f'T{n}\t{lab} {s} {e}\t{frag}\n')

def per_doc(fn):
    out = {}
    for i, (text, spans) in gold.items():
        out[i] = (text, fn(text, [list(s) for s in spans]))
    return out

def drop(p):
    return lambda t, sp: [s for s in sp if rng.random() >= p]

def shift(p):
    def f(t, sp):
        out = []
        for s, e, l in sp:
            if rng.random() < p:
                if rng.random() < 0.5: s = max(0, s + rng.choice([-1, 1]))
                else: e = e + rng.choice([-1, 1])
                if e <= s: e = s + 1
            out.append([s, e, l])
        return out
    return f

def relabel(p):
    return lambda t, sp: [[s, e, rng.choice([x for x in labels if x != l]) if rng.random() < p else l] for s, e, l in sp]

def split(p, space_only):
    def f(t, sp):
        out = []
        for s, e, l in sp:
            cuts = []
            k = s + 1
            while k < e - 1:
                if (t[k] == ' ') if space_only else (not t[k].isalnum()):
                    j = k
                    while j < e and not t[j].isalnum(): j += 1
                    if j < e: cuts.append((k, j))
                    k = j
                k += 1
            if cuts and rng.random() < p:
                a, b = rng.choice(cuts)
                out += [[s, a, l], [b, e, l]]
            else:
                out.append([s, e, l])
        return out
    return f

def merge(p):
    def f(t, sp):
        out = []
        for s, e, l in sp:
            if out and 0 <= s - out[-1][1] <= 4 and rng.random() < p:
                out[-1][1] = max(out[-1][1], e)
            else:
                out.append([s, e, l])
        return out
    return f

def mixed(t, sp):
    sp = drop(0.05)(t, sp); sp = shift(0.05)(t, sp); sp = relabel(0.05)(t, sp)
    sp = split(0.1, False)(t, sp); sp = merge(0.3)(t, sp)
    extra = []
    for s, e, l in sp:
        r = rng.random()
        if r < 0.03 and e - s > 2: extra.append([s + 1, e - 1, l])          # nested
        elif r < 0.06: extra.append([s, e, l])                              # duplicate
        elif r < 0.08: extra.append([max(0, s - 3), s + 1, l])             # overlapping
    n = len(t)
    for _ in range(rng.randint(0, 3)):                                      # spurious
        a = rng.randrange(0, max(1, n - 10)); extra.append([a, a + rng.randint(1, 12), rng.choice(labels)])
    if rng.random() < 0.02: extra.append([n + 2, n + 9, 'FECHAS'])          # past the end
    if rng.random() < 0.05: return []                                       # empty prediction
    return sorted(sp + extra)

def chaos(t, sp):
    # Many overlapping, nested, touching and out-of-range spans: stresses the merge fold.
    out = [list(x) for x in sp if rng.random() < 0.7]
    n = len(t)
    for _ in range(rng.randint(0, 15)):
        a = rng.randrange(0, n + 5)
        out.append([a, a + rng.randint(1, 30), rng.choice(labels)])
    for s, e, l in sp:
        if rng.random() < 0.2: out.append([s, e + rng.randint(0, 3), l])
        if rng.random() < 0.1: out.append([e, e + rng.randint(1, 4), l])
    return sorted(out)

rng = random.Random(seed)
sets = {
    'drop10': drop(0.1), 'shift15': shift(0.15), 'relabel15': relabel(0.15),
    'split_space50': split(0.5, True), 'split_punct50': split(0.5, False), 'merge_adjacent70': merge(0.7),
    'mixed': mixed, 'chaos': chaos,
}
for name, fn in sets.items():
    write(name, per_doc(fn))
ids = sorted(gold)
write('missing10', per_doc(lambda t, sp: sp), skip=set(rng.sample(ids, len(ids) // 10)))
print(' '.join(list(sets) + ['missing10']))
