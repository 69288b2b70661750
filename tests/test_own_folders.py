"""Which existing folders the pack makes owner-only (0700) again: its own (cloud_outpaint in ComfyUI's
user directory, cloud-outpaint elsewhere), whichever module writes there (the cost settings, the spend
ledger, the spend holds' lock, the credential store, a paid run against the sandbox); a folder of the
user's that only happens to be named like one of the state folder's sub-folders is left as it was."""

import os
import stat

import pytest
import test_result_cache as runs
from pack import module

cost_state = module("nodes.core.cost_state")
credential_store = module("nodes.core.credential_store")
spend_holds = module("nodes.core.spend_holds")
spend_ledger = module("nodes.core.spend_ledger")


@pytest.mark.parametrize("name,ours", [("cloud_outpaint", True), ("cloud-outpaint", True), ("cache", False),
                                       ("journal", False), ("locks", False)])
def test_only_the_packs_own_folder_is_made_owner_only_again(sb, cloud_env, tmp_path, name, ours):
    state = tmp_path / name
    state.mkdir(mode=0o755)
    cloud_env.setenv("CLOUD_OUTPAINT_CACHE", "on")
    cloud_env.setenv("CLOUD_OUTPAINT_CACHE_DIR", str(state))
    cloud_env.setenv("CLOUD_OUTPAINT_PRICE_VOLC_CNY", "0.05")

    def holds():
        with spend_holds.SpendHolds(state).locked():
            pass

    writers = {"settings": lambda: cost_state.save({"daily_limit_cny": 5}),
               "ledger": lambda: spend_ledger.SpendLedger(state).append("volc", "request id", "r-1", 1, 0.05),
               "holds": holds,
               "credential store": lambda: credential_store.save(state / "credentials.json", "dashscope",
                                                                 {"api_key": "sk-" + "a" * 32}),
               "paid run": lambda: runs.run_volc(runs.picture())}
    for what, write in writers.items():
        os.chmod(state, 0o755)
        write()
        assert stat.S_IMODE(state.stat().st_mode) == (0o700 if ours else 0o755), what
    assert sb.billable_count("volc") == 1
