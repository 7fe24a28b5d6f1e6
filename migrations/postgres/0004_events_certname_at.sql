-- Rejections and alerts of one certname within a time window (the alert check on every
-- refused request) read only that window, not the certname's whole history.
CREATE INDEX events_certname_at ON events (certname, at);
