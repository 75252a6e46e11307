"""Random workloads replayed with the pure scheduler: the policy's makespan / LB, no overhead.

    python -m benchmarks.replay [--workloads 400] [--seed 7]

Each workload draws 2-8 workers and 2-6 jobs of caps 1-6, each job with its own scale
(log-uniform over two orders of magnitude) and tests around it (log-normal, sigma 0.3).
The duration order runs each twice on a fake clock: a first run (nothing known, each
duration learned as its test ends or runs) and a second (every duration known). Prints
the mean, 90th percentile and worst makespan / LB of each; a policy change should move
them down, or say why not.
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics

from pytest_dynpool.scheduler import CappedScheduler


def makespan(
    workers: int, caps: list[int], job_of: list[int], seconds: list[float], known: bool
) -> float:
    now = [0.0]
    scheduler = CappedScheduler(
        workers, caps, job_of, clock=lambda: now[0], known_seconds=seconds if known else ()
    )
    running: list[tuple[float, int]] = []
    while True:
        while (item := scheduler.next_dispatch()) is not None:
            heapq.heappush(running, (now[0] + seconds[item], item))
        if not running:
            return now[0]
        now[0], item = heapq.heappop(running)
        scheduler.complete(item, seconds[item])


def lower_bound(workers: int, caps: list[int], job_of: list[int], seconds: list[float]) -> float:
    work: dict[int, float] = {}
    for job, duration in zip(job_of, seconds, strict=True):
        work[job] = work.get(job, 0.0) + duration
    per_job = [total / min(caps[job], workers) for job, total in work.items()]
    return max([sum(seconds) / workers, max(seconds), *per_job])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay")
    parser.add_argument("--workloads", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    ratios: dict[str, list[float]] = {"first run": [], "second run": []}
    for _ in range(args.workloads):
        workers = rng.randint(2, 8)
        caps = [rng.randint(1, 6) for _ in range(rng.randint(2, 6))]
        scale = [10 ** rng.uniform(-2, 0) for _ in caps]
        job_of = [rng.randrange(len(caps)) for _ in range(rng.randint(10, 80))]
        seconds = [scale[job] * rng.lognormvariate(0, 0.3) for job in job_of]
        bound = lower_bound(workers, caps, job_of, seconds)
        for label, known in (("first run", False), ("second run", True)):
            ratios[label].append(makespan(workers, caps, job_of, seconds, known) / bound)
    print(f"{args.workloads} random workloads, seed {args.seed}: makespan / LB")
    for label, values in ratios.items():
        values.sort()
        p90 = values[int(0.9 * len(values))]
        print(f"{label}: mean {statistics.mean(values):.3f}, p90 {p90:.3f}, worst {values[-1]:.3f}")


if __name__ == "__main__":
    main()
