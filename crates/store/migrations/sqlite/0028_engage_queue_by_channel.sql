-- The reminders' queue is claimed per channel (the Telegram worker and the SMS worker each take
-- their own): an index that starts at the channel, so one worker's claim does not walk the
-- other's backlog (a Telegram outage leaves thousands queued; the SMS worker polls every second).
CREATE INDEX engage_sends_queued_channel ON engage_sends (channel, run_at_ms, id) WHERE status = 'queued';
DROP INDEX engage_sends_queued;
