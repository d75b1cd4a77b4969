"""Scrapes a Prometheus endpoint and reads it with the Prometheus client's own parser.

Prints `ok=1`, `families=N`, then one `name{label="v",...}=value` line per sample (labels sorted), so a C test
can assert values with es_kv. Exits 1 with the parser's complaint when the text does not parse, or when a
family's samples break the format's rules (histogram buckets not cumulative, +Inf bucket != _count).

usage: prom_scrape.py URL
"""
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    url = sys.argv[1]
    with urllib.request.urlopen(url, timeout=10) as resp:
        ctype = resp.headers.get("content-type", "")
        text = resp.read().decode("utf-8")
    print(f"content_type={ctype}")
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser's own error: the text is not the format
        print(f"ok=0\nerror={e!r}")
        return 1
    print(f"families={len(families)}")
    for fam in families:
        print(f"type:{fam.name}={fam.type}")
        buckets: dict = {}
        counts: dict = {}
        for s in fam.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            print(f"{s.name}{{{labels}}}={s.value:g}")
            if s.name.endswith("_bucket"):
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                buckets.setdefault(key, []).append((float(s.labels["le"]), s.value))
            elif s.name.endswith("_count") and fam.type == "histogram":
                counts[tuple(sorted(s.labels.items()))] = s.value
        for key, bs in buckets.items():
            bs.sort()
            values = [v for _, v in bs]
            if values != sorted(values):
                print(f"ok=0\nerror=buckets of {fam.name}{key} not cumulative: {bs}")
                return 1
            if bs[-1][0] != float("inf") or counts.get(key) != bs[-1][1]:
                print(f"ok=0\nerror={fam.name}{key}: +Inf bucket {bs[-1]} != count {counts.get(key)}")
                return 1
    print("ok=1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
