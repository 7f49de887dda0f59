#!/usr/bin/env python3
"""Which statistics window serves the future best?

Runs `swiftbalancer replay` with the fixed interval and several windows and decays on three
traces, and prints, per trace and setting, the placement's imbalance on the window it was
computed from ("window"), the imbalance it met on the steps it then served ("future"), the mean
imbalance over the whole trace, and the transfers:

  generated  the built-in DeepSeek-V3-like trace, 58 x 256, 64 x 5 ranks x slots, 2000 steps,
             workload switch at step 1000 (gen-trace), interval 100;
  qwen15moe  the real per-step series of ../shared/traces/qwen15moe (4 inputs x 20 steps played
             one after the other: 80 steps, 12 x 60), 8 x 8, interval 4, 4 layers per step;
  olmoe      ../shared/traces/olmoe_mixtral OLMoE distributions (arxiv -> github -> c4, layers 0,
             7 and 15, 64 experts, top-8) sampled for 3000 steps of 4096 tokens, 8 x 10, interval
             100.

Traces that are absent are skipped with a message. Usage:
  /usr/bin/python3 bench/window_study.py [--cli build/src/swiftbalancer] [--traces ../shared/traces]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def replay(cli, args, out_json):
    cmd = [cli, "replay", *args, "--json", out_json]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("replay failed (%s):\n%s" % (" ".join(cmd), res.stderr))
    with open(out_json) as f:
        return json.load(f)


def settings(interval):
    # (label, extra replay args): sliding windows of 1, 2, 4 and 8 intervals, decayed sums.
    out = []
    for k in (1, 2, 4, 8):
        out.append(("window %d" % (k * interval), ["--window", str(k * interval)]))
    for d in (0.5, 0.8, 0.9):
        out.append(("decay %.1f" % d, ["--decay", str(d)]))
    return out


def study(cli, name, base_args, interval, policy, tmp):
    print("\n%s (interval %d, %s)" % (name, interval, policy))
    print("| setting | window | future | future - window | mean | transfers |")
    print("|---|---|---|---|---|---|")
    best = None
    for label, extra in settings(interval):
        j = replay(cli, [*base_args, "--interval", str(interval), "--policy", policy, *extra],
                   os.path.join(tmp, "r.json"))
        p = j["policies"][0]
        imb = p["imbalance"]
        print("| %s | %.3f | %.3f | %+.3f | %.3f | %d |" %
              (label, imb["window"], imb["future"], imb["future"] - imb["window"], imb["mean"],
               p["transfers"]))
        if best is None or imb["future"] < best[1]:
            best = (label, imb["future"])
    print("best future: %s (%.3f)" % best)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", default=os.path.join(here, "..", "build", "src", "swiftbalancer"))
    ap.add_argument("--traces", default=os.path.join(here, "..", "..", "shared", "traces"))
    ap.add_argument("--policy", default="swift:async")
    a = ap.parse_args()
    if not os.path.exists(a.cli):
        sys.exit("no swiftbalancer binary at %s (build first, or pass --cli)" % a.cli)
    with tempfile.TemporaryDirectory() as tmp:
        trace = os.path.join(tmp, "gen.npy")
        subprocess.run([a.cli, "gen-trace", "-o", trace, "--steps", "2000", "--switch-at", "1000"],
                       check=True, capture_output=True)
        study(a.cli, "generated", ["--trace", trace, "--switch-at", "1000"], 100, a.policy, tmp)

        q = os.path.join(a.traces, "qwen15moe")
        files = [os.path.join(q, "qwen15moe_%s.csv" % n)
                 for n in ("bookcorpus", "wikitext", "wmt19", "random")]
        if all(os.path.exists(f) for f in files):
            study(a.cli, "qwen15moe (real series)",
                  ["--trace", *files, "--ranks", "8", "--slots", "8", "--ranks-per-node", "4",
                   "--layers-per-step", "4", "--recover-window", "4", "--expert-mb", "12"], 4,
                  a.policy, tmp)
        else:
            print("\nqwen15moe: skipped (%s not found)" % q)

        o = os.path.join(a.traces, "olmoe_mixtral")
        bases = [os.path.join(o, "olmoe_expert_counts_%s.csv" % n)
                 for n in ("arxiv", "github", "c4")]
        if all(os.path.exists(f) for f in bases):
            study(a.cli, "olmoe (real distributions, sampled)",
                  ["--base", *bases, "--drop-zero-layers", "--steps", "3000", "--ranks", "8",
                   "--slots", "10", "--ranks-per-node", "8", "--expert-mb", "12"], 100, a.policy,
                  tmp)
        else:
            print("\nolmoe_mixtral: skipped (%s not found)" % o)


if __name__ == "__main__":
    main()
