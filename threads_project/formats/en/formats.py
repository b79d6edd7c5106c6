"""One way to write a time on every page for people (the operator pages and the admin), with its
zone: 2026-12-07 05:15:32 UTC. ISO-like, so that it sorts and compares at a glance, and the zone
is settings.TIME_ZONE's (UTC unless DJANGO_TIME_ZONE says otherwise). The API writes ISO-8601."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
DATE_FORMAT = SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
