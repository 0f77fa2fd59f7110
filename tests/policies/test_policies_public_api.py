"""The public surface of ``policies`` is pinned, and importing it pulls in no heavy dependency."""

import subprocess
import sys
from pathlib import Path

import policies

EXPECTED = {
    "SUPPORTED_POLICY_VERSION",
    "AcceptancePolicy",
    "BiasPolicy",
    "BudgetPolicy",
    "ClassRemediation",
    "CompressionInfeasibleError",
    "CompressionPolicy",
    "CompressionResolution",
    "FieldIssue",
    "MeasuredResults",
    "PadOverrides",
    "PolicyError",
    "PolicyFileError",
    "PolicyValidationError",
    "PolicyViolation",
    "RuleResult",
    "RunPolicy",
    "Status",
    "Verdict",
    "dump_policy",
    "load_policy",
    "parse_policy",
    "policy_json_schema",
    "write_policy_schema",
}


def test_all_is_pinned():
    assert set(policies.__all__) == EXPECTED
    assert len(policies.__all__) == len(EXPECTED)
    for name in policies.__all__:
        assert getattr(policies, name) is not None


def test_exception_tree():
    for exc in (policies.PolicyValidationError, policies.PolicyFileError, policies.PolicyViolation,
                policies.CompressionInfeasibleError):
        assert issubclass(exc, policies.PolicyError)
    # Validation errors are also ValueErrors, so generic callers that catch ValueError still work.
    assert issubclass(policies.PolicyValidationError, ValueError)


def test_import_pulls_in_no_torch_numpy_or_sdk():
    code = (
        "import sys, policies\n"
        "heavy = {'torch', 'numpy', 'pad_sdk', 'connectors'}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(','.join(bad))\n"
    )
    root = Path(__file__).resolve().parents[2]  # the repository root, so `policies` imports uninstalled
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == ""


def test_every_public_object_has_a_docstring():
    for name in policies.__all__:
        obj = getattr(policies, name)
        if callable(obj):
            assert obj.__doc__, name
