"""Transaction timer values (RFC 3261 17, Table 4 of Appendix A; RFC 6026 Table 1).

``TimerConfig`` is the settings object every duration of the transaction layer
comes from. A timer left at ``None`` takes the value the RFC derives from T1 or
T4, so changing T1 alone scales B, F, H, J, L and M with it, as the RFC intends.

Each timer has a method that answers for one transport kind: ``reliable`` is
True for TCP, TLS, SCTP and WebSocket, False for UDP. The RFC's choices:

* A, E and G (request and response retransmission) run only on unreliable
  transports (17.1.1.2, 17.1.2.2, 17.2.1); on a reliable one they answer None,
  meaning "not started".
* D, I, J and K (the waits that absorb retransmissions) are zero on reliable
  transports (17.1.1.2, 17.2.1, 17.2.2, 17.1.2.2).
* B, F, H, L and M are 64*T1 on every transport (17.1.1.2, 17.1.2.2, 17.2.1;
  RFC 6026 7.1 and 7.2).
* C, the proxy's INVITE timer, is more than three minutes (16.6 step 11).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from centrex.records import IdentityEnum


class Timer(IdentityEnum):
    """The named timers of RFC 3261 Table 4 and RFC 6026 Table 1."""

    A = "A"  # INVITE request retransmit interval, UDP only (17.1.1.2)
    B = "B"  # INVITE transaction timeout (17.1.1.2)
    C = "C"  # proxy INVITE transaction timeout (16.6 step 11)
    D = "D"  # wait time for response retransmits (17.1.1.2)
    E = "E"  # non-INVITE request retransmit interval, UDP only (17.1.2.2)
    F = "F"  # non-INVITE transaction timeout (17.1.2.2)
    G = "G"  # INVITE response retransmit interval (17.2.1)
    H = "H"  # wait time for ACK receipt (17.2.1)
    I = "I"  # wait time for ACK retransmits (17.2.1)  # noqa: E741
    J = "J"  # wait time for non-INVITE request retransmits (17.2.2)
    K = "K"  # wait time for response retransmits (17.1.2.2)
    L = "L"  # wait time for accepted INVITE request retransmits (RFC 6026 17.2.1)
    M = "M"  # wait time for retransmission of 2xx to INVITE (RFC 6026 17.1.1.2)


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """Timer settings of the transaction layer, in seconds (RFC 3261 17.1.1.1, App. A).

    ``t1`` is the RTT estimate, ``t2`` the cap of non-INVITE request and INVITE
    response retransmission intervals, ``t4`` the time a message may linger in
    the network. ``timer_x = None`` means the RFC default: 64*T1 for B, F, H, J,
    L and M; T4 for I and K. ``timer_d`` defaults to the RFC's 32 s and
    ``timer_c`` to three minutes. Values set explicitly are the durations on an
    unreliable transport; the RFC's zeros for reliable transports still apply.
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_b: float | None = None
    timer_d: float = 32.0
    timer_f: float | None = None
    timer_h: float | None = None
    timer_i: float | None = None
    timer_j: float | None = None
    timer_k: float | None = None
    timer_l: float | None = None
    timer_m: float | None = None
    timer_c: float = 180.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{field.name} must be a number of seconds, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(
                    f"{field.name} must be a positive number of seconds, got {value!r}"
                )
        if self.t2 < self.t1:
            raise ValueError(f"t2 ({self.t2}) must not be smaller than t1 ({self.t1})")

    # -- the derived defaults -------------------------------------------------

    def _sixty_four_t1(self, value: float | None) -> float:
        return 64 * self.t1 if value is None else value

    def _t4(self, value: float | None) -> float:
        return self.t4 if value is None else value

    # -- one method per timer (RFC 3261 Table 4) ----------------------------------

    def timer_a_for(self, *, reliable: bool) -> float | None:
        """Initial INVITE retransmit interval: T1, not started on reliable (17.1.1.2)."""
        return None if reliable else self.t1

    def timer_b_for(self, *, reliable: bool) -> float:
        """INVITE transaction timeout: 64*T1 on every transport (17.1.1.2)."""
        return self._sixty_four_t1(self.timer_b)

    def timer_c_for(self, *, reliable: bool) -> float:
        """Proxy INVITE transaction timeout, > 3 min (16.6 step 11)."""
        return self.timer_c

    def timer_d_for(self, *, reliable: bool) -> float:
        """Response retransmit wait: >= 32 s on unreliable, 0 on reliable (17.1.1.2)."""
        return 0.0 if reliable else self.timer_d

    def timer_e_for(self, *, reliable: bool) -> float | None:
        """Initial non-INVITE retransmit interval: T1, not started on reliable (17.1.2.2)."""
        return None if reliable else self.t1

    def timer_f_for(self, *, reliable: bool) -> float:
        """Non-INVITE transaction timeout: 64*T1 on every transport (17.1.2.2)."""
        return self._sixty_four_t1(self.timer_f)

    def timer_g_for(self, *, reliable: bool) -> float | None:
        """Initial INVITE response retransmit interval: T1, unreliable only (17.2.1)."""
        return None if reliable else self.t1

    def timer_h_for(self, *, reliable: bool) -> float:
        """Wait time for ACK receipt: 64*T1 on every transport (17.2.1)."""
        return self._sixty_four_t1(self.timer_h)

    def timer_i_for(self, *, reliable: bool) -> float:
        """Wait time for ACK retransmits: T4 on unreliable, 0 on reliable (17.2.1)."""
        return 0.0 if reliable else self._t4(self.timer_i)

    def timer_j_for(self, *, reliable: bool) -> float:
        """Wait for non-INVITE request retransmits: 64*T1 unreliable, 0 reliable (17.2.2)."""
        return 0.0 if reliable else self._sixty_four_t1(self.timer_j)

    def timer_k_for(self, *, reliable: bool) -> float:
        """Wait time for response retransmits: T4 on unreliable, 0 on reliable (17.1.2.2)."""
        return 0.0 if reliable else self._t4(self.timer_k)

    def timer_l_for(self, *, reliable: bool) -> float:
        """Wait time for accepted INVITE retransmits: 64*T1 (RFC 6026 7.1)."""
        return self._sixty_four_t1(self.timer_l)

    def timer_m_for(self, *, reliable: bool) -> float:
        """Wait time for 2xx retransmissions: 64*T1 (RFC 6026 7.2)."""
        return self._sixty_four_t1(self.timer_m)

    def duration(self, timer: Timer, *, reliable: bool) -> float | None:
        """The initial duration of ``timer``, or None when it is not started at all."""
        return _METHODS[timer](self, reliable=reliable)

    def backoff(self, interval: float, *, cap_at_t2: bool) -> float:
        """The next retransmit interval after ``interval``: doubled, capped at T2 when
        the RFC says so (Timers E and G, 17.1.2.2 and 17.2.1; not Timer A, 17.1.1.2)."""
        doubled = 2 * interval
        return min(doubled, self.t2) if cap_at_t2 else doubled


_METHODS = {
    Timer.A: TimerConfig.timer_a_for,
    Timer.B: TimerConfig.timer_b_for,
    Timer.C: TimerConfig.timer_c_for,
    Timer.D: TimerConfig.timer_d_for,
    Timer.E: TimerConfig.timer_e_for,
    Timer.F: TimerConfig.timer_f_for,
    Timer.G: TimerConfig.timer_g_for,
    Timer.H: TimerConfig.timer_h_for,
    Timer.I: TimerConfig.timer_i_for,
    Timer.J: TimerConfig.timer_j_for,
    Timer.K: TimerConfig.timer_k_for,
    Timer.L: TimerConfig.timer_l_for,
    Timer.M: TimerConfig.timer_m_for,
}
