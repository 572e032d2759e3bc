"""`python -m bench.hotspots PROFILE.speedscope.json [N]`: the functions a py-spy
profile spends its samples in, by own time and by inclusive time (idle excluded)."""

import json
import sys
from collections import Counter


def _name(frame: dict) -> str:
    return f"{frame['name']} ({frame.get('file', '?').rsplit('/', 1)[-1]}:{frame.get('line', '')})"


def hotspots(path: str, top: int = 25) -> str:
    doc = json.loads(open(path).read())
    frames = doc["shared"]["frames"]
    own, inclusive, total = Counter(), Counter(), 0
    for profile in doc["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            names = [_name(frames[i]) for i in stack]
            if not names or "select" in names[-1] or "epoll" in names[-1] or "_run_once" in names[-1]:
                continue  # the event loop waiting
            total += weight
            own[names[-1]] += weight
            for name in set(names):
                inclusive[name] += weight
    lines = [f"{path}: {total} busy samples", "own time:"]
    lines += [f"  {100 * w / total:5.1f}%  {n}" for n, w in own.most_common(top)]
    lines += ["inclusive:"] + [f"  {100 * w / total:5.1f}%  {n}" for n, w in inclusive.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(hotspots(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25))
