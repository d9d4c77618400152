"""SUBSCRIBE/NOTIFY: the registrar events and the standard packages (RFC 6665).

``SubscriptionTable`` is the notifier, sans-IO: the server feeds it SUBSCRIBE
requests, the registrar's ``AorEvent``s, NOTIFY outcomes and the time, and
sends the ``Notify``s it returns. Packages: the registrar events
(user-available / user-unavailable, names configurable, two wire forms),
``reg`` (RFC 3680) and ``presence`` (RFC 3856 with PIDF, RFC 3863).
"""

from centrex.presence.dialog import Kind, Notify, Subscription, Watcher
from centrex.presence.recovery import FILE_NAME as RECOVERY_FILE_NAME
from centrex.presence.recovery import load, save
from centrex.presence.roster import Roster
from centrex.presence.settings import PresenceSettings, WireForm
from centrex.presence.subscriptions import SubscriptionTable
from centrex.presence.userlist import UserEntry, parse_event_list

__all__ = [
    "RECOVERY_FILE_NAME",
    "Kind",
    "Notify",
    "PresenceSettings",
    "Roster",
    "Subscription",
    "SubscriptionTable",
    "UserEntry",
    "Watcher",
    "WireForm",
    "load",
    "parse_event_list",
    "save",
]
