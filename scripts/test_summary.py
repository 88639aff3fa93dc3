#!/usr/bin/env python3
"""Counts test cases from a Bazel build-event JSON file.

Prints one line per failed test target, then "N passed, N failed".
A test target that failed to build, crashed or timed out without a
test.xml of failures counts as one failed test. Exits 1 if any failed
or no test ran.
"""
import json
import sys
import urllib.parse
import xml.etree.ElementTree as ET


def xml_counts(path):
    """(passed, failed, skipped) test cases in a gtest/JUnit test.xml."""
    passed = failed = skipped = 0
    for case in ET.parse(path).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.get("status") == "notrun" or case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def main(bep_path):
    test_targets = set()
    summaries = {}
    xmls = {}
    with open(bep_path) as f:
        for line in f:
            event = json.loads(line)
            ident = event.get("id", {})
            if "targetConfigured" in ident and "testSize" in event.get("configured", {}):
                test_targets.add(ident["targetConfigured"]["label"])
            if "testSummary" in ident:
                label = ident["testSummary"]["label"]
                summaries[label] = event.get("testSummary", {}).get("overallStatus", "")
            if "testResult" in ident:
                label = ident["testResult"]["label"]
                for out in event.get("testResult", {}).get("testActionOutput", []):
                    if out.get("name") == "test.xml" and out.get("uri", "").startswith("file://"):
                        xmls.setdefault(label, []).append(
                            urllib.parse.unquote(out["uri"][len("file://"):]))

    passed = failed = skipped = 0
    for label in sorted(test_targets):
        status = summaries.get(label)
        if status is None:
            print(f"FAILED {label}: did not build")
            failed += 1
            continue
        p = f = s = 0
        for path in xmls.get(label, [])[-1:]:  # the last attempt
            try:
                p, f, s = xml_counts(path)
            except (OSError, ET.ParseError) as e:
                print(f"{label}: unreadable test.xml ({e})")
        if status != "PASSED" and f == 0:
            f = 1  # crash, timeout or a runner that wrote no failure
        if f:
            print(f"FAILED {label}: {status}")
        passed, failed, skipped = passed + p, failed + f, skipped + s
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
