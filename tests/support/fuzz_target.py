"""A live service under fuzzing, and the visitors its accepted input should have counted."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from support.processes import LOG_FAULTS, Service, wait_until

EDITOR_TOKEN = "fuzz-editor-token-for-tests-0000000000000"


@dataclass
class Fuzzed:
    """A live service and the visitors that the input it accepted should have counted."""

    service: Service
    counted: set[str] = field(default_factory=set)

    def session_cookies(self) -> dict[str, str]:
        """An editor's dashboard session for the demo site (for the history API)."""
        signed = httpx.post(
            self.service.base + "/dashboard/login",
            data={"site": "demo", "token": EDITOR_TOKEN},
            timeout=5,
        )
        assert signed.status_code == 303, signed.text
        return dict(signed.cookies)

    def today(self) -> dict[str, int]:
        return httpx.get(self.service.base + "/api/v1/sites/demo/stats", timeout=5).json()["today"]

    def check_counts(self) -> None:
        """Today's visits are exactly the accepted visitors: refused
        input counted nobody, accepted input nobody twice."""
        expected = len(self.counted)

        def settled() -> bool:
            today = self.today()
            # `visitors` is a HyperLogLog estimate (within about 2 %); visits are exact.
            close = abs(today["visitors"] - expected) <= max(1, expected // 50)
            return today["visits"] == expected and close

        wait_until(settled, 5, f"today's visitors and visits == {expected} ({self.today()})")

    def check_logs(self) -> None:
        logs = self.service.logs()
        for fault in LOG_FAULTS:
            assert fault not in logs, f"service log has {fault!r}:\n{logs[-3000:]}"
