//! The command line of `loyalty-gateway`: every command, its options and their help. `main.rs`
//! dispatches them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use loyalty_core::access::Role;
use loyalty_core::audit::Plan;
use loyalty_core::{Country, CrmKind, Currency};
use loyalty_gateway::config::Overrides;

/// Loyalty Bridge gateway: a points loyalty program for beauty salons, on top of the CRM the
/// salon already uses.
///
/// The database is PostgreSQL (production; many gateway instances can share it) or SQLite (the
/// embedded default: a file in the data directory, no set-up). Settings come from flags, then
/// environment variables, then the optional TOML file given by --config, then defaults.
#[derive(Debug, Parser)]
#[command(name = "loyalty-gateway", version, about, long_about)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) settings: Overrides,

    /// Print exactly one JSON object on stdout instead of text.
    #[arg(long, global = true, help_heading = "Output")]
    pub(crate) json: bool,

    /// Who the audit log names for what this command changes (default: the operator's user
    /// name, $USER).
    #[arg(long, global = true, value_name = "NAME", help_heading = "Output")]
    pub(crate) actor: Option<String>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the HTTP service, the outbox worker and the Telegram bot until SIGTERM or Ctrl-C.
    Serve,
    /// A day of a small salon, end to end, on a throwaway embedded database: a simulated
    /// YCLIENTS sends webhooks to the real gateway and a Telegram stand-in prints each message.
    /// It ends with the salon's dashboard address and sign-ins.
    Demo {
        /// Keep serving (the dashboard, the webhooks) until Ctrl-C.
        #[arg(long)]
        serve: bool,
    },
    /// Apply the database migrations (safe to run again: applied ones are skipped).
    Migrate,
    /// Show the effective configuration, secrets hidden.
    Config,
    /// Partners (salons or chains) and their points program.
    #[command(subcommand)]
    Partner(PartnerCmd),
    /// The partner's points program: show it, or change it (a new version, in force from now).
    #[command(subcommand)]
    Program(ProgramCmd),
    /// Connections of partners to their CRM.
    #[command(subcommand)]
    Connection(ConnectionCmd),
    /// A client's balance and history.
    #[command(subcommand)]
    Client(ClientCmd),
    /// The partner's rewards catalog: what points buy.
    #[command(subcommand)]
    Reward(RewardCmd),
    /// The CRM's service list (for service rewards) and which services points may buy.
    #[command(subcommand)]
    Services(ServicesCmd),
    /// Visits entered at the desk, for salons whose CRM tells us nothing (DIKIDI, paper): the
    /// program's rules apply as for a CRM's visit, the client is found or created by phone and
    /// told in Telegram.
    #[command(subcommand)]
    Visit(VisitCmd),
    /// A client at the desk exchanges points for a reward; prints the code to use.
    Redeem {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        phone: String,
        #[arg(long)]
        reward: i64,
        /// The same key twice gives the same code (safe to retry).
        #[arg(long)]
        key: Option<String>,
    },
    /// Redemption codes at the desk.
    #[command(subcommand)]
    Code(CodeCmd),
    /// Who signs in to a salon's dashboard: owner (everything), admin (the desk: clients,
    /// codes, visits, manual points), viewer (the figures only).
    #[command(subcommand)]
    User(UserCmd),
    /// A salon's own Telegram bot (made with @BotFather): its clients link, are told and
    /// redeem through it instead of the deployment's bot.
    #[command(subcommand)]
    Bot(BotCmd),
    /// The partner API's keys (the Enterprise plan): shown once when made, kept hashed.
    #[command(subcommand)]
    ApiKey(ApiKeyCmd),
    /// Let a staff member's Telegram chat check and use the partner's codes in the bot
    /// (`/check CODE`, `/use CODE [BILL]`; a money certificate needs the bill it pays). The chat
    /// id is what the bot replies to; @userinfobot shows it.
    StaffAdd {
        #[arg(long)]
        partner: i64,
        #[arg(long, allow_hyphen_values = true)]
        chat: i64,
    },
    /// The history import: a connection's clients and visits of the past, no points for them.
    #[command(subcommand)]
    Import(ImportCmd),
    /// Reminders: who is due and why, what was sent or held out, a client's consent.
    #[command(subcommand)]
    Engage(EngageCmd),
    /// What the program earns: the reminders' uplift against the control group.
    #[command(subcommand)]
    Analytics(AnalyticsCmd),
    /// The reconciliation poller: what it read last per connection, and how often.
    #[command(subcommand)]
    Sync(SyncCmd),
    /// Checks and repairs of stored data.
    #[command(subcommand)]
    Doctor(DoctorCmd),
    /// CRM events waiting for the CRM's API before they are applied (a partial record to
    /// re-fetch, how a bill was paid), and those given up on.
    #[command(subcommand)]
    Inbox(InboxCmd),
    /// What people did, newest first: manual accruals and debits, codes used at the desk,
    /// program, plan and level changes — who, from where, when.
    Audit {
        #[arg(long)]
        partner: i64,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// The latest webhook deliveries the gateway refused, with why.
    Rejected {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Print what a CRM webhook body means, one JSON object per event; no database needed.
    /// Exit status 2 when the body cannot be understood.
    InspectWebhook {
        /// Which CRM sent it.
        #[arg(long, value_name = "yclients|altegio|arnica|beautypro")]
        crm: CrmKind,
        /// The company's currency (default: RUB for YCLIENTS and Arnica, USD for Altegio).
        #[arg(long, value_name = "CODE")]
        currency: Option<Currency>,
        /// The company's offset from UTC in minutes, for times sent without one
        /// (default: 180 for YCLIENTS, 0 for Altegio).
        #[arg(long, value_name = "MINUTES", allow_hyphen_values = true)]
        utc_offset_minutes: Option<i32>,
        /// The company's country, for phones typed without a country code.
        #[arg(long, value_name = "CC", default_value = "RU")]
        country: Country,
        /// The body, or `-` for standard input.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCmd {
    /// Add a user. Without --password-stdin the answer carries a one-time link (7 days) where
    /// they set their password.
    Add {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        email: String,
        #[arg(long, value_name = "owner|admin|viewer")]
        role: Role,
        /// Read the password from standard input (one line; at least 10 characters).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user: they cannot sign in any more, and their sessions end now.
    Remove {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        email: String,
    },
    /// The partner's users.
    List {
        #[arg(long)]
        partner: i64,
    },
    /// Link a user to their Telegram chat: `/login` in the bot then answers with a one-time
    /// link that signs them in (no password needed). The chat id is what the bot replies to.
    Chat {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        email: String,
        #[arg(long, allow_hyphen_values = true, required_unless_present = "unlink")]
        chat: Option<i64>,
        /// Unlink the chat instead.
        #[arg(long, conflicts_with = "chat")]
        unlink: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ApiKeyCmd {
    /// Make a key: printed once (`Authorization: Bearer <key>`), with its prefix.
    Add {
        #[arg(long)]
        partner: i64,
        #[arg(long, value_name = "read|write")]
        scope: String,
    },
    /// Revoke a key by its prefix: it stops working at once.
    Revoke {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        prefix: String,
    },
    /// The partner's keys: prefixes and scopes, never the keys.
    List {
        #[arg(long)]
        partner: i64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BotCmd {
    /// Connect the salon's bot; its token is read from standard input (one line), checked
    /// with Telegram, and its webhook registered when the deployment has a public URL.
    Set {
        #[arg(long)]
        partner: i64,
    },
    /// Take the salon's bot off: its clients link again through the deployment's bot.
    Remove {
        #[arg(long)]
        partner: i64,
    },
    /// Every salon's own bot.
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PartnerCmd {
    /// Add a partner; prints its id.
    Add(PartnerArgs),
    /// Change a partner's program settings.
    Set {
        #[arg(long)]
        partner: i64,
        /// Where the salon is (ISO 3166 alpha-2): phones typed without a country code are read
        /// as this country's from now on (`doctor phones` re-reads the stored ones).
        #[arg(long, value_name = "CC")]
        country: Option<Country>,
    },
    /// Set what the product serves the partner: basic (manual accrual and debit; CRM webhooks
    /// are refused and kept), pro (the CRM integration, automatic accrual), enterprise.
    Plan {
        #[arg(long)]
        partner: i64,
        #[arg(long, value_name = "basic|pro|enterprise")]
        plan: Plan,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ImportCmd {
    /// Import the connection's CRM clients and visits since --since (default: 24 months back)
    /// into the history, here and now; no points for visits before the connection was made
    /// (or before --accrue-since). Killed, it continues where it was when run again.
    Crm {
        #[arg(long)]
        connection: i64,
        /// YYYY-MM-DD: the first day imported.
        #[arg(long)]
        since: Option<String>,
        /// YYYY-MM-DD: visits from this day on earn points (once; never again).
        #[arg(long)]
        accrue_since: Option<String>,
    },
    /// The imports and how far they got.
    Status {
        #[arg(long)]
        connection: Option<i64>,
    },
    /// Clients, visits and opening balances from CSV or XLSX files (DIKIDI, YCLIENTS or a
    /// spreadsheet export) onto the partner's desk: checked and reported by row, nothing
    /// written without --apply. Importing the same files again changes nothing.
    File(FileArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct FileArgs {
    #[arg(long)]
    pub(crate) partner: i64,
    /// Clients: phone, name, e-mail.
    #[arg(long, value_name = "FILE")]
    pub(crate) clients: Option<PathBuf>,
    /// Visits: phone, date (and time), paid, service, master, status, id.
    #[arg(long, value_name = "FILE")]
    pub(crate) visits: Option<PathBuf>,
    /// Opening balances: phone, points — one entry per client, for a salon switching programs.
    #[arg(long, value_name = "FILE")]
    pub(crate) balances: Option<PathBuf>,
    /// Whose column names to expect.
    #[arg(
        long,
        value_name = "generic|dikidi|yclients",
        default_value = "generic"
    )]
    pub(crate) preset: loyalty_import::Preset,
    /// COLUMN=FIELD (a header's text or its number from 1; fields: id, phone, name, date, time,
    /// paid, service, master, status, points, email). Repeatable.
    #[arg(long, value_name = "COLUMN=FIELD")]
    pub(crate) map: Vec<String>,
    /// A CSV file's encoding (default: found from the file).
    #[arg(long, value_name = "utf-8|cp1251", value_parser = encoding)]
    pub(crate) encoding: Option<loyalty_import::Encoding>,
    /// A CSV file's separator (default: found from its first row).
    #[arg(long, value_name = ", | ; | tab", value_parser = loyalty_gateway::cli::delimiter)]
    pub(crate) delimiter: Option<u8>,
    /// Write: without it the files are only checked.
    #[arg(long)]
    pub(crate) apply: bool,
    /// The visits earn points by the program (exactly once); without it they are history only.
    #[arg(long)]
    pub(crate) accrue: bool,
    /// Import although the partner's CRM reports visits itself (they would count twice).
    #[arg(long)]
    pub(crate) force: bool,
}

fn encoding(typed: &str) -> Result<loyalty_import::Encoding, String> {
    loyalty_import::Encoding::parse(typed)
        .ok_or_else(|| format!("expected utf-8 or cp1251, got {typed:?}"))
}

#[derive(Debug, Subcommand)]
pub(crate) enum SyncCmd {
    /// Per connection: the last pass, the cursor and how far behind it is, what it found,
    /// the last error, the interval in force.
    Status {
        #[arg(long)]
        connection: Option<i64>,
    },
    /// Poll this connection every --seconds (0: not at all), or at the deployment's interval
    /// again (--default).
    Interval {
        #[arg(long)]
        connection: i64,
        #[arg(long, conflicts_with = "default", required_unless_present = "default")]
        seconds: Option<u32>,
        #[arg(long)]
        default: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum InboxCmd {
    /// What waits (with --dead: what was given up on after days of failing), oldest first.
    List {
        #[arg(long)]
        dead: bool,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Try an item again now (a dead letter too), its tries counted from zero.
    Replay { id: i64 },
}

#[derive(Debug, Subcommand)]
pub(crate) enum EngageCmd {
    /// Who would get which reminder now, and why; sends and records nothing.
    Preview {
        #[arg(long)]
        partner: i64,
        /// Only this trigger (inactive, due, expiring, missed, welcome_back, birthday).
        #[arg(long)]
        trigger: Option<String>,
    },
    /// Scan the salon now and record what is due (`serve` does this by itself every hour).
    Run {
        #[arg(long)]
        partner: i64,
    },
    /// The reminders recorded (sent, queued, held out, cancelled), newest first.
    List {
        #[arg(long)]
        partner: i64,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// The last scheduled scan and what it found.
    Status {
        #[arg(long)]
        partner: i64,
    },
    /// A client's consent log: the personal-data notice and marketing opt-ins, as given. With
    /// `--sms-grant` or `--sms-withdraw`, first records an SMS opt-in given or withdrawn at the
    /// desk (SMS go only to clients who gave one).
    Consent {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        phone: String,
        /// The exact text of the SMS consent the client signed.
        #[arg(long, value_name = "TEXT", conflicts_with = "sms_withdraw")]
        sms_grant: Option<String>,
        /// The client no longer wants SMS: what is queued is cancelled.
        #[arg(long)]
        sms_withdraw: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AnalyticsCmd {
    /// Per trigger: the return rate of clients sent a reminder against those held out, the
    /// difference with its 95% interval (pooled over all salons beside it when this salon is
    /// too small to tell).
    Uplift {
        #[arg(long)]
        partner: i64,
        /// A return counts within this many days of the reminder.
        #[arg(long, default_value_t = 30)]
        window_days: u32,
    },
    /// BG/NBD (who is still a client, visits to expect) and Gamma-Gamma (what a visit is worth)
    /// fitted on a salon's history (time in days) or on a summary file: parameters,
    /// log-likelihood, diagnostics; with --horizon, each customer's P(alive) and expected visits.
    Fit {
        #[arg(long, required_unless_present = "summary", conflicts_with = "summary")]
        partner: Option<i64>,
        /// `frequency,recency,T[,monetary_value]` per customer, as `lifetimes` writes it (any
        /// time unit); read without a database.
        #[arg(long, value_name = "FILE.csv")]
        summary: Option<std::path::PathBuf>,
        /// The horizon (in the data's time unit) of each customer's expected visits.
        #[arg(long)]
        horizon: Option<f64>,
    },
    /// Which way of spotting clients who will stay away works at this salon: the fixed 30-day
    /// rule, a per-service interval, the personal cadence and BG/NBD, judged on the last days
    /// of its own history (precision at the fixed rule's recall; BG/NBD's calibration).
    Backtest {
        #[arg(long)]
        partner: i64,
        #[arg(long, default_value_t = 90)]
        horizon_days: u32,
    },
    /// Personal offers by trigger and variant: offers sent, the share of the last 30 days'
    /// traffic, clients back within 30 days, the return rate's posterior (mean, 95 % interval,
    /// the chance it is the best variant), and the benefits posted.
    Offers {
        #[arg(long)]
        partner: i64,
    },
    /// The salon's churn and value model as the `at_risk` trigger uses it: whether it is used
    /// here and why (its backtest against the rules), its parameters, the spread of 12-month
    /// values, and the most valuable clients with their chance of still coming. Built now when
    /// there is none (or with --refresh); `serve` rebuilds it weekly.
    Model {
        #[arg(long)]
        partner: i64,
        /// Build it again now from the salon's history.
        #[arg(long)]
        refresh: bool,
        /// How many of the most valuable clients to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DoctorCmd {
    /// Re-read every stored client phone in its partner's country and list those that would
    /// change or cannot exist; --apply moves a client to the corrected number when no other
    /// client holds it (collisions are listed, never merged).
    Phones {
        #[arg(long)]
        partner: Option<i64>,
        #[arg(long)]
        apply: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PartnerArgs {
    #[arg(long)]
    pub(crate) name: String,
    /// Its plan (default: the deployment's, --default-plan).
    #[arg(long, value_name = "basic|pro|enterprise")]
    pub(crate) plan: Option<Plan>,
    /// Cashback in basis points: 500 = 5 % of the paid amount.
    #[arg(long)]
    pub(crate) cashback_bps: u32,
    #[arg(long, default_value = "RUB")]
    pub(crate) currency: Currency,
    /// Where the salon is (ISO 3166 alpha-2: RU, KZ, BY, UA, UZ, …): phones typed without a
    /// country code are read as this country's.
    #[arg(long, value_name = "CC", default_value = "RU")]
    pub(crate) country: Country,
    /// Visits paid below this (minor units: kopecks) earn nothing.
    #[arg(long, default_value_t = 0)]
    pub(crate) min_paid_minor: i64,
    /// Points expire this many days after they were earned (default: never).
    #[arg(long)]
    pub(crate) points_ttl_days: Option<u32>,
    /// Points granted once when a client links Telegram.
    #[arg(long, default_value_t = 0)]
    pub(crate) welcome_bonus: i64,
    /// What one point is worth in minor units (100 = 1 ₽).
    #[arg(long, default_value_t = 100)]
    pub(crate) point_value_minor: i64,
    /// The largest share of a bill points may pay, in basis points: a gateway code for a money
    /// certificate is used only on a bill at least its value / share (`code use --bill-minor`).
    #[arg(long, default_value_t = 5000)]
    pub(crate) max_redeem_share_bps: u32,
    /// Days a redemption code stays usable.
    #[arg(long, default_value_t = 90)]
    pub(crate) code_ttl_days: u32,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConnectionCmd {
    /// Connect a partner to a CRM company; prints the webhook URL to paste into the CRM.
    Add {
        #[arg(long)]
        partner: i64,
        #[arg(long, value_name = "yclients|altegio|arnica|beautypro")]
        crm: CrmKind,
        /// The company (location) id in the CRM; Arnica: the organisation's id (`orgId`);
        /// Beauty Pro: the salon's database code.
        #[arg(long)]
        company_id: String,
        /// The developer partner token (lets the gateway re-fetch partial records).
        #[arg(long, env = "CRM_PARTNER_TOKEN", hide_env_values = true)]
        partner_token: Option<String>,
        /// The salon's user token.
        #[arg(long, env = "CRM_USER_TOKEN", hide_env_values = true)]
        user_token: Option<String>,
        /// Arnica: the e-mail of the integrator employee SQNS support enabled the API for.
        #[arg(long)]
        email: Option<String>,
        /// Arnica: that employee's password.
        #[arg(long, env = "CRM_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Arnica: the API's base URL, when it is not https://crmexchange.1denta.ru.
        #[arg(long)]
        base_url: Option<String>,
        /// Beauty Pro: our application's id (AI Helps registers it).
        #[arg(long)]
        app_id: Option<String>,
        /// Beauty Pro: our application's secret.
        #[arg(long, env = "CRM_APP_SECRET", hide_env_values = true)]
        app_secret: Option<String>,
        /// Beauty Pro: a root for every API call instead of AI Helps' own (a proxy).
        #[arg(long)]
        api_url: Option<String>,
        /// The company's offset from UTC (default: 180 for YCLIENTS and Arnica, 0 for
        /// Altegio).
        #[arg(long, allow_hyphen_values = true)]
        utc_offset_minutes: Option<i32>,
        /// The location's country when it is not the partner's (ISO 3166 alpha-2).
        #[arg(long, value_name = "CC")]
        country: Option<Country>,
    },
    /// Subscribe the connection's webhook URL to its CRM's changes through the CRM's API
    /// (Beauty Pro: appointments, sales, clients and services), once the salon granted access.
    Webhooks { connection: i64 },
    /// Change a connection's settings.
    Set {
        connection: i64,
        /// Create people who join through the bot (by the salon's link) and whom the CRM does
        /// not know in the CRM, with their name and phone.
        #[arg(long, value_name = "on|off", value_parser = on_off)]
        create_clients: Option<bool>,
    },
    /// How the connection writes rewards into its CRM: top up the client's loyalty card,
    /// sell a certificate, or (the default) the gateway's own codes checked by staff.
    Rewards {
        connection: i64,
        #[arg(long, value_name = "loyalty-card|certificate|gateway-code")]
        strategy: String,
        /// loyalty-card: the chain (network) id the card type belongs to.
        #[arg(long)]
        chain: Option<String>,
        /// loyalty-card: the card type to top up (issued to clients who have none).
        #[arg(long)]
        card_type: Option<String>,
        /// certificate: the good linked to a certificate type.
        #[arg(long)]
        good: Option<String>,
        /// certificate: the storage the good is sold from.
        #[arg(long)]
        storage: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CodeCmd {
    /// What a code is for and whether it can be used.
    Show { code: String },
    /// Mark a code used: its points are spent. A code is used once.
    Use {
        code: String,
        /// The bill it pays, in minor units (kopecks). Needed for a gateway code worth money:
        /// points pay at most the program's share of a bill (`--max-redeem-share-bps`).
        #[arg(long)]
        bill_minor: Option<i64>,
    },
    /// Settle a reward the gateway could not confirm in the CRM (see `crm_error`): --written
    /// when it is there, --not-written to give the points back.
    Resolve {
        code: String,
        #[arg(
            long,
            conflicts_with = "not_written",
            required_unless_present = "not_written"
        )]
        written: bool,
        #[arg(long)]
        not_written: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServicesCmd {
    /// Read the connection's service list from its CRM now (the gateway also does it every
    /// 6 hours and when the CRM reports a service change).
    Sync {
        #[arg(long)]
        connection: i64,
    },
    /// The connection's services as last synced (with --all, those gone from the CRM too);
    /// with --kind staff|category|good, its masters, service categories or goods instead.
    List {
        #[arg(long)]
        connection: i64,
        #[arg(long)]
        all: bool,
        #[arg(long, value_parser = ["staff", "category", "good"])]
        kind: Option<String>,
    },
    /// Let points buy this service (the default for a synced service).
    Allow {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        service: String,
    },
    /// Keep this service out of rewards; its rewards leave the catalog.
    Deny {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        service: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RewardCmd {
    /// Add a money certificate (--certificate-minor) or a CRM service (--service-id; its
    /// synced price unless --price-minor is given) bought for --points.
    Add {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        title: String,
        /// What it costs in points.
        #[arg(long)]
        points: i64,
        /// A certificate of this value in minor units (50000 = 500 ₽).
        #[arg(long)]
        certificate_minor: Option<i64>,
        /// The service's id in the CRM.
        #[arg(long)]
        service_id: Option<String>,
        /// The service's price in minor units (default: its price in the synced list).
        #[arg(long)]
        price_minor: Option<i64>,
    },
    /// The rewards clients can buy now (with --all, removed ones too).
    List {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        all: bool,
    },
    /// Take a reward off the catalog.
    Remove {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        reward: i64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClientCmd {
    /// Balance and latest history of the client with this phone.
    Show {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        phone: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Add points by hand (a desk without a CRM, a goodwill gesture); the client is told.
    Accrue {
        #[command(flatten)]
        manual: ManualArgs,
    },
    /// Write points off by hand (spent at the desk); never below zero; the client is told.
    Debit {
        #[command(flatten)]
        manual: ManualArgs,
    },
    /// The client's level, what the next one needs and the changes; --set puts her at a level
    /// by hand, which is then a floor no review goes below (--unset removes it).
    Level {
        #[arg(long)]
        partner: i64,
        /// The client's phone, as typed in the partner's country.
        #[arg(long)]
        phone: String,
        /// A level's name from the program.
        #[arg(long, value_name = "LEVEL", conflicts_with = "unset")]
        set: Option<String>,
        /// Remove the floor set by hand; her level stays until its review.
        #[arg(long)]
        unset: bool,
    },
    /// Everything kept of the client with this phone, as JSON (152-FZ: her copy on request):
    /// the card, CRM ids, Telegram link, balance, ledger, visits, redemptions, levels,
    /// consents, referrals. Audited.
    Export {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        phone: String,
    },
    /// Remove the client's personal data on request (152-FZ): phone, name, e-mail, birth date,
    /// Telegram link and CRM ids, and the messages and texts that name her. Her points and
    /// visits stay in the books under an anonymous id; a later visit for this phone starts a
    /// new client. Audited; cannot be undone.
    Forget {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        phone: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum VisitCmd {
    /// A visit that came: the bill earns by the program. The same --key again is a duplicate
    /// (safe to retry); without one, a key is drawn and printed for `visit correct`.
    Add {
        #[arg(long)]
        partner: i64,
        /// The client's phone, as typed in the partner's country.
        #[arg(long)]
        phone: String,
        /// The bill after discounts, in minor units (kopecks): 350000 is 3,500.00.
        #[arg(long, allow_hyphen_values = true)]
        paid_minor: i64,
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        master: Option<String>,
        /// The client's name, for a client met for the first time.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        key: Option<String>,
        /// Enter it although the partner's CRM reports visits itself (only for a visit that
        /// CRM does not have: otherwise it counts twice).
        #[arg(long)]
        force: bool,
    },
    /// The bill of a desk visit was another amount: the difference is posted (a reversal when
    /// it was less), with the reason.
    Correct {
        #[arg(long)]
        partner: i64,
        /// The visit's key, as `visit add` printed it.
        #[arg(long)]
        key: String,
        #[arg(long, allow_hyphen_values = true)]
        paid_minor: i64,
        #[arg(long)]
        reason: String,
    },
    /// The desk visit did not happen: its points are reversed, with the reason.
    Cancel {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        key: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProgramCmd {
    /// The program in force as JSON, the form `program set --file` reads (with --json: with
    /// its version; --versions lists every version).
    Show {
        #[arg(long)]
        partner: i64,
        #[arg(long)]
        versions: bool,
    },
    /// Replace the program with the JSON in FILE (`-`: standard input), checked first: cashback,
    /// caps, levels (ordered, the first at 0), expiry. It is a new version in force from now;
    /// a visit before now is still computed with the version of its time.
    Set {
        #[arg(long)]
        partner: i64,
        #[arg(long, value_name = "FILE")]
        file: String,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct ManualArgs {
    #[arg(long)]
    pub(crate) partner: i64,
    /// The client's phone, as typed in the partner's country.
    #[arg(long)]
    pub(crate) phone: String,
    /// How many points (more than zero).
    #[arg(long)]
    pub(crate) points: i64,
    /// Why: the client's message and the history show it.
    #[arg(long)]
    pub(crate) reason: String,
    /// Makes a retry safe: the same key again is the same posting, with other input an error.
    #[arg(long)]
    pub(crate) key: Option<String>,
}

pub(crate) fn on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("expected on or off, got {other:?}")),
    }
}
