"""README's "Supported kernels" table is the matrix's last measured result, not prose.

tests/kernels/results.json is written by `make kernels`; the README block
between the kernels-table markers must be exactly what it renders to, and
the matrix's result parser must read the checks' output as they print it.
"""

from __future__ import annotations

import json

from tests.kernels import matrix, readme_table


def test_readme_table_equals_the_results_file() -> None:
    results = json.loads(readme_table.RESULTS.read_text())
    text = readme_table.README.read_text()
    assert readme_table.current_block(text) == readme_table.render(results), (
        "README's Supported kernels table differs from tests/kernels/results.json: "
        "run `make kernels-readme`")


def test_results_cover_the_five_kernels_and_the_bcc_row() -> None:
    results = json.loads(readme_table.RESULTS.read_text())
    suites = [k["suite"] for k in results["kernels"]]
    assert suites == ["bullseye", "bookworm", "bookworm-bcc", "trixie", "trixie-backports", "host"]
    assert suites == matrix.ORDER and matrix.BCC not in matrix.DEFAULT
    for k in results["kernels"]:
        assert k["release"], k
        assert k["result"] == ("pass" if k["failed"] == 0 and not k["failures"] else "fail"), k


def test_parse_reads_a_serial_log_with_kernel_noise() -> None:
    log = ("[    1.2] random: crng init done\r\nKCHECK kernel 6.1.0-57-amd64\r\n"
           "KCHECK load-failure handle_exec: R1 unbounded memory access\r\n"
           "[    9.9] some kernel line KCHECK FAIL collector-run-attaches: exit 3: x\r\n"
           "KCHECK PASS collector-check\r\nKCHECK SUMMARY 1 passed, 1 failed\r\n")
    r = matrix.parse("6.1", "bookworm", log, 12.3)
    assert (r.release, r.result, r.passed, r.failed) == ("6.1.0-57-amd64", "fail", 1, 1)
    assert r.load_failures == ["handle_exec: R1 unbounded memory access"]
    assert r.failures == ["collector-run-attaches: exit 3: x"]
    ok = matrix.parse("7.x", "trixie-backports", "KCHECK kernel 7.3\nKCHECK SUMMARY 14 passed, 0 failed\n", 1)
    assert ok.result == "pass"
    cut = matrix.parse("6.12", "trixie", "KCHECK kernel 6.12\nKCHECK PASS collector-check\n", 300)
    assert cut.result == "fail" and "no summary" in cut.failures[0]
