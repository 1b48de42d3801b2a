import opsgate_example


def test_module_has_hooks():
    assert hasattr(opsgate_example, "opsgate_event")
