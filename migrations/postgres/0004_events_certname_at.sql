-- Rejections and alerts of one certname within a time window (the alert check on every
-- refused request) read only that window, not the certname's whole history; whether an
-- alert was already raised is one index probe, however many rejections the window holds.
CREATE INDEX events_certname_at ON events (certname, at);
CREATE INDEX events_certname_kind_at ON events (certname, kind, at);
