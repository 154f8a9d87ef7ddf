"""Runs the shards of one synthdeid stage as Ray tasks, then merges them.

    PY="$(scripts/ray/env.sh)/bin/python"
    $PY scripts/ray/driver.py --workers 2 --shards 4 --out synthetic.jsonl -- \\
        lm generate --model runs/x/model --prompts prompts.jsonl --samples-per-prompt 80 --seed 13
    $PY scripts/ray/driver.py --workers 2 --shards 4 --out deid-out -- \\
        deid --spans-from-input --input notes.jsonl --mode surrogate --key-file key

Everything after `--` is a synthdeid command that takes `--shard I/N` and `--out` (`lm generate`,
`deid`, `ner predict`): the driver adds `--out PART --shard k/N` for shard k, runs the N shard
commands as Ray tasks (one CPU each, at most `--workers` at once), then `synthdeid merge` joins
the parts in shard order into `--out`: the same bytes as the unsharded command (tested by
crates/synthdeid/tests/ray_driver.rs).

Ray: without `--address` a local cluster of `--workers` CPUs is started for the run (the tests do
this); with `--address auto` (or `ray://host:10001`) the tasks go to a running cluster, whose
nodes must see the same paths (a shared file system) and have the synthdeid binary (`--synthdeid`).

Rerunning the driver after a failure redoes only the shards whose part is missing, and `lm
generate` itself resumes a shard killed mid-way (its journal beside the part). Parts live in
`OUT.shards/` and are removed after a successful merge unless `--keep-parts`.

Each shard process gets `RAYON_NUM_THREADS` = `--threads` (default: the machine's cores divided
by the workers), so that the workers do not oversubscribe the cores. Nothing here prints document
text: a failing shard's error is synthdeid's, which never quotes it.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time


def part_path(out, k):
    """The part of shard k: same kind of output as OUT (a .jsonl file or a directory)."""
    base = os.path.basename(os.path.normpath(out))
    stem, ext = os.path.splitext(base)
    if ext != ".jsonl":
        stem, ext = base, ""
    return os.path.join(out.rstrip("/") + ".shards", f"{stem}-part{k}{ext}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2, help="shard processes at once (CPUs of the local cluster)")
    ap.add_argument("--shards", type=int, default=None, help="number of shards N (default: --workers)")
    ap.add_argument("--out", required=True, help="the merged output (.jsonl file or directory)")
    ap.add_argument("--synthdeid", default=os.environ.get("SYNTHDEID_BIN", "synthdeid"), help="the synthdeid binary")
    ap.add_argument("--address", default=None, help="a running Ray cluster (e.g. auto); default: start a local one")
    ap.add_argument("--threads", type=int, default=None, help="RAYON_NUM_THREADS of each shard process")
    ap.add_argument("--keep-parts", action="store_true", help="keep OUT.shards/ after merging")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the synthdeid command without --out/--shard")
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("give the synthdeid command after --")
    if any(x in ("--out", "--shard") or x.startswith(("--out=", "--shard=")) for x in cmd):
        ap.error("the command must not have --out or --shard: the driver adds them")
    n = a.shards or a.workers
    if n < 1 or a.workers < 1:
        ap.error("--workers and --shards must be at least 1")
    binary = shutil.which(a.synthdeid) or a.synthdeid
    if not os.path.exists(binary):
        sys.exit(f"ray driver: the synthdeid binary {a.synthdeid!r} was not found: build it (cargo build --release -p synthdeid) and give --synthdeid PATH")
    binary = os.path.abspath(binary)
    threads = a.threads or max(1, (os.cpu_count() or 1) // a.workers)
    out = os.path.abspath(a.out)
    os.makedirs(out.rstrip("/") + ".shards", exist_ok=True)
    parts = [part_path(out, k) for k in range(n)]

    import ray

    t0 = time.time()
    if a.address:
        ray.init(address=a.address, log_to_driver=False)
    else:
        ray.init(num_cpus=a.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    t_ray = time.time() - t0

    @ray.remote(num_cpus=1, max_retries=1, retry_exceptions=False)
    def run_shard(k):
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        args = [binary, *cmd, "--out", parts[k], "--shard", f"{k}/{n}"]
        t = time.time()
        r = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return k, r.returncode, time.time() - t, r.stderr[-4000:]

    todo = [k for k in range(n) if not os.path.exists(parts[k])]
    skipped = n - len(todo)
    t1 = time.time()
    results = ray.get([run_shard.remote(k) for k in todo])
    t_shards = time.time() - t1
    ray.shutdown()
    failed = [(k, rc, err) for k, rc, _, err in results if rc != 0]
    for k, rc, err in failed:
        print(f"ray driver: shard {k}/{n} failed (exit {rc}):\n{err.strip()}", file=sys.stderr)
    if failed:
        sys.exit(f"ray driver: {len(failed)} of {n} shards failed; run the driver again to redo only those")
    for k, _, secs, _ in sorted(results):
        print(f"ray driver: shard {k}/{n} done in {secs:.1f} s", file=sys.stderr)
    merge = [binary, "merge", *parts, "--out", out, "--force"]
    r = subprocess.run(merge, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"ray driver: merging failed:\n{r.stderr.strip()}")
    if not a.keep_parts:
        shutil.rmtree(out.rstrip("/") + ".shards")
    print(
        f"ray driver: {n} shards ({skipped} already done) on {a.workers} workers: cluster start {t_ray:.1f} s, "
        f"shards {t_shards:.1f} s, total {time.time() - t0:.1f} s -> {a.out}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
