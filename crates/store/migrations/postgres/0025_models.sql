-- A salon's churn and value model (issue 14), as `loyalty_engage::risk::build` left it: the
-- backtest's verdict, the fitted parameters and the spread of its clients' 12-month values, or
-- why the model is not used there. Rebuilt by the scheduled scan when a week old. Mirrors
-- ../sqlite/0025_models.sql.
CREATE TABLE engage_models (
    partner_id   BIGINT NOT NULL PRIMARY KEY REFERENCES partners (id),
    fitted_at_ms BIGINT NOT NULL,
    model        TEXT NOT NULL
);
