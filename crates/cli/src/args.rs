//! The command line: every command, its options and their spelling.
//!
//! Parsing only: what a command does lives in its own module. The words here
//! are the ones users and scripts rely on (DESIGN.md, "Interfaces").

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Patchwarden keeps an organisation's systems patched the way its policy says.
///
/// Exit codes: 0 done; 1 the control log does not verify; 2 the command could
/// not run (bad usage, a file or database that cannot be read, no server at
/// the address); 3 the server refused the request (the message says why);
/// 4 the server failed.
#[derive(Debug, Parser)]
#[command(name = "patchwarden", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the product for a first look: plain HTTP on 127.0.0.1:8080, SQLite in
    /// ./patchwarden-data, a system for this machine and demo people with invitations.
    Up(UpArgs),
    /// Run the server (HTTPS unless --insecure-http on a loopback address).
    Serve(ServeArgs),
    /// Server configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Set your password with an invitation, or log in with it, and get an API token.
    Login(LoginArgs),
    /// Accounts (admin).
    #[command(subcommand)]
    User(UserCommand),
    /// Your own API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Information systems, their owners and documentation.
    #[command(subcommand)]
    System(SystemCommand),
    /// Update requests and every step of their lifecycle.
    #[command(subcommand)]
    Request(RequestCommand),
    /// Enrolled machines: enrolment tokens, inventories, revocation.
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// The control log: through the server, or offline with --database.
    #[command(subcommand)]
    Log(LogCommand),
    /// The patch management policy and its versions.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Package versions.
    #[command(subcommand)]
    Version(VersionCommand),
    /// See Patchwarden work: one update request walked from draft to closed.
    ///
    /// A missing SQLite file (and its folder) or PostgreSQL database is created;
    /// run again on the same database, it only checks the log.
    Demo(DemoArgs),
}

/// Where the server is and who is calling: flags or `PATCHWARDEN_*` variables.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The server's base URL.
    #[arg(long, env = "PATCHWARDEN_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Your API token.
    #[arg(long, env = "PATCHWARDEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The Patchwarden CA certificate (PEM) to trust for HTTPS.
    #[arg(long, env = "PATCHWARDEN_CA")]
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the SQLite file, keys and settings are kept.
    #[arg(long, default_value = "patchwarden-data")]
    pub data_dir: PathBuf,
    /// The loopback address and port to serve plain HTTP on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Do not run this machine's agent.
    #[arg(long)]
    pub no_agent: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML configuration file (see `patchwarden config example`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The address and port to listen on.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The database: sqlite:PATH or postgres://USER@HOST/DB.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// Serve plain HTTP; allowed on loopback addresses only.
    #[arg(long)]
    pub insecure_http: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting with its environment variable and a comment.
    Example,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The invitation code you were given (pwi_…): set your password.
    #[arg(long, value_name = "CODE", conflicts_with = "name")]
    pub invite: Option<String>,
    /// Your account name: log in with your password for a new token.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Read the password from the first line of standard input, not the terminal.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account; prints its single-use invitation.
    Create(UserCreateArgs),
    /// A new invitation for an account that has not set its password.
    Invite(NameArgs),
    /// Every account.
    List(ReadArgs),
    /// One account.
    Show(NamedReadArgs),
    /// The account your token belongs to.
    Whoami(ReadArgs),
}

#[derive(Debug, Args)]
pub struct UserCreateArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The account name: lowercase letters, digits, '.', '_' or '-'.
    pub name: String,
    /// Roles, comma-separated: security-officer, operator, owner, auditor, admin.
    #[arg(long = "role", value_name = "ROLE[,ROLE]", required = true)]
    pub roles: String,
    #[arg(long)]
    pub email: Option<String>,
    /// The person's position in the organisation.
    #[arg(long)]
    pub position: Option<String>,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    pub name: String,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct NamedReadArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Another API token for yourself; shown once.
    Create(TokenCreateArgs),
    /// Your tokens (never their values).
    List(ReadArgs),
    /// Revoke one of your tokens by its id.
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// What the token is for, to tell it apart in `token list`.
    #[arg(long)]
    pub label: Option<String>,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    pub id: i64,
}

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// A single-use, expiring token that enrols one agent into an environment.
    EnrollToken(EnrollTokenArgs),
    /// Enrolled endpoints.
    List(EndpointListArgs),
    /// One endpoint: facts, pending updates (security ones marked), reboot.
    Show(EndpointShowArgs),
    /// Revoke an endpoint's credential; its agent is refused from then on.
    Revoke(EndpointRevokeArgs),
}

#[derive(Debug, Args)]
pub struct EnrollTokenArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long)]
    pub system: String,
    #[arg(long = "env", value_enum)]
    pub environment: Environment,
}

#[derive(Debug, Args)]
pub struct EndpointListArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    #[arg(long)]
    pub system: Option<String>,
}

#[derive(Debug, Args)]
pub struct EndpointShowArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    pub id: String,
    /// Every installed package too, not only the pending updates.
    #[arg(long)]
    pub packages: bool,
}

#[derive(Debug, Args)]
pub struct EndpointRevokeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    pub id: String,
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Create a system (security officer).
    Create(SystemCreateArgs),
    /// Every system.
    List(ReadArgs),
    /// One system.
    Show(NamedReadArgs),
    /// A system's documentation revisions.
    Documentation(NamedReadArgs),
    /// How an environment is worked on: health checks, rollback, reboot.
    Environment(EnvironmentArgs),
}

#[derive(Debug, Args)]
pub struct EnvironmentArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    pub name: String,
    #[arg(value_enum)]
    pub environment: Environment,
    /// Replace the settings with this JSON file (security officer); without it, show them.
    #[arg(long, value_name = "FILE")]
    pub set: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SystemCreateArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    pub name: String,
    /// The owner's account name.
    #[arg(long)]
    pub owner: String,
    /// The deputy owner's account name.
    #[arg(long)]
    pub deputy: Option<String>,
    /// Stakeholders' account names, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub stakeholders: Vec<String>,
    /// E-mail addresses of the system's users, told of planned downtime; comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub notify: Vec<String>,
    /// The system's IANA time zone, such as Europe/Berlin.
    #[arg(long = "tz", value_name = "ZONE")]
    pub time_zone: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// File a draft (security officer); a draft may have gaps, `submit` names them.
    Create(RequestCreateArgs),
    /// Update requests, newest last.
    List(RequestListArgs),
    /// One request with its plan, results, problems and decisions.
    Show(RequestShowArgs),
    /// Fill in or change a draft's fields.
    Amend(AmendArgs),
    /// Submit a complete draft for the owner's approval.
    Submit(VerbArgs),
    /// Approve as the system's owner or deputy.
    Approve(ApproveArgs),
    /// Reject as the system's owner or deputy.
    Reject(ReasonArgs),
    /// Start test work (the assigned operator).
    StartTest(VerbArgs),
    /// Record the test's outcome (the assigned operator).
    RecordTest(ReportArgs),
    /// Decide after a failure: proceed, abandon, roll-back or accept.
    Decide(DecideArgs),
    /// Acknowledge the test's conclusion (owner).
    AcknowledgeTest(VerbArgs),
    /// Propose the production plan (the assigned operator).
    ProposePlan(PlanArgs),
    /// Accept the plan (the update officer and the owner, one call each).
    AcceptPlan(VerbArgs),
    /// Approve the plan and record its announcement (the assigned operator).
    ApprovePlan(VerbArgs),
    /// Confirm the owner's presence for production work.
    ConfirmPresence(VerbArgs),
    /// Start production work (the assigned operator).
    StartProduction(VerbArgs),
    /// Record production's outcome (the assigned operator).
    RecordProduction(ReportArgs),
    /// Record the documentation revision made after the update (the assigned operator).
    Document(DocumentArgs),
    /// Close the request (its update officer).
    Close(VerbArgs),
    /// Cancel the request (owner or update officer).
    Cancel(ReasonArgs),
    /// Replace the plan; it must be accepted and approved again.
    RevisePlan(PlanArgs),
    /// Pause test or production work.
    Pause(ReasonArgs),
    /// Resume paused work.
    Resume(VerbArgs),
    /// Record a problem found.
    Problem(ProblemArgs),
    /// The jobs sent to endpoints for a request, with their outcomes.
    Jobs(RequestShowArgs),
}

/// The fields of a request, as `create` and `amend` take them.
#[derive(Debug, Clone, Args)]
pub struct FieldArgs {
    /// The update officer's account name (by default you).
    #[arg(long)]
    pub officer: Option<String>,
    /// The operator's account name.
    #[arg(long)]
    pub operator: Option<String>,
    /// When test work is planned, with an offset or [Zone/Name].
    #[arg(long, value_name = "TIME")]
    pub test_date: Option<String>,
    /// When production work is planned, with an offset or [Zone/Name].
    #[arg(long, value_name = "TIME")]
    pub prod_date: Option<String>,
    /// Why the update is needed.
    #[arg(long)]
    pub purpose: Option<String>,
    /// The expected downtime window.
    #[arg(long)]
    pub downtime: Option<String>,
    /// What will be done, technically.
    #[arg(long)]
    pub description: Option<String>,
    /// A package and its target version, NAME=VERSION; repeat for more.
    #[arg(long = "package", value_name = "NAME=VER")]
    pub packages: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RequestCreateArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The system the update is for.
    #[arg(long)]
    pub system: String,
    #[command(flatten)]
    pub fields: FieldArgs,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct RequestListArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    /// Only this system's requests.
    #[arg(long)]
    pub system: Option<String>,
    /// Only requests in this state, such as submitted or testing.
    #[arg(long)]
    pub state: Option<String>,
}

#[derive(Debug, Args)]
pub struct RequestShowArgs {
    #[command(flatten)]
    pub read: ReadArgs,
    pub id: String,
}

/// What every lifecycle verb takes.
#[derive(Debug, Args)]
pub struct VerbArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The request's number.
    pub id: String,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct AmendArgs {
    #[command(flatten)]
    pub verb: VerbArgs,
    #[command(flatten)]
    pub fields: FieldArgs,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    pub verb: VerbArgs,
    #[arg(long)]
    pub comment: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReasonArgs {
    #[command(flatten)]
    pub verb: VerbArgs,
    #[arg(long, required = true)]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub verb: VerbArgs,
    /// The work passed its checks.
    #[arg(long, conflicts_with = "failed", required_unless_present = "failed")]
    pub passed: bool,
    /// The work failed; describe the problem with --problem and --criticality.
    #[arg(long)]
    pub failed: bool,
    #[arg(long)]
    pub notes: Option<String>,
    /// The problem found.
    #[arg(long, requires = "criticality")]
    pub problem: Option<String>,
    #[arg(long, value_enum)]
    pub criticality: Option<Criticality>,
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    #[command(flatten)]
    pub verb: VerbArgs,
    #[arg(long, value_enum)]
    pub decision: Decision,
    #[arg(long, required = true)]
    pub reasoning: String,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub verb: VerbArgs,
    /// When production work starts, with an offset or [Zone/Name].
    #[arg(long, value_name = "TIME")]
    pub start: String,
    /// How long the work takes: 90m, 2h, 1h30m.
    #[arg(long, value_name = "DURATION")]
    pub duration: String,
    /// Participants' account names, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub participants: Vec<String>,
    /// E-mail addresses the announcement goes to, comma-separated (by default the system's).
    #[arg(long, value_delimiter = ',')]
    pub recipients: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DocumentArgs {
    #[command(flatten)]
    pub verb: VerbArgs,
    /// What the documentation revision changed.
    #[arg(long, required = true)]
    pub summary: String,
}

#[derive(Debug, Args)]
pub struct ProblemArgs {
    #[command(flatten)]
    pub verb: VerbArgs,
    #[arg(long, required = true)]
    pub description: String,
    #[arg(long, value_enum)]
    pub criticality: Criticality,
    #[arg(long, value_enum)]
    pub environment: Option<Environment>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Criticality {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    Test,
    Prod,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Decision {
    Proceed,
    Abandon,
    RollBack,
    Accept,
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Check the hash chain, the head row and each request's state.
    ///
    /// Exits 0 when the log is intact, 1 when it is not, 2 when the database
    /// or server cannot be read.
    Verify(VerifyArgs),
    /// Print the log's entries in sequence order.
    Show(ShowArgs),
    /// The whole log (or one request's entries) as CSV or JSON, through the server.
    Export(ExportArgs),
}

/// Offline, straight from a database, instead of through the server.
#[derive(Debug, Args)]
pub struct DatabaseArg {
    /// Read this database directly, offline: sqlite:PATH or postgres://USER@HOST/DB.
    #[arg(long = "database", value_name = "URL")]
    pub url: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub database: DatabaseArg,
    #[command(flatten)]
    pub server: ServerArgs,
    /// How to print the answer; json is a stable shape for scripts.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub database: DatabaseArg,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Only the entries of this update request.
    #[arg(long, value_name = "ID")]
    pub request: Option<i64>,
    /// How to print the answer; json is a stable shape for scripts.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Only the entries of this update request.
    #[arg(long, value_name = "ID")]
    pub request: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// The policy version in force.
    Show(ReadArgs),
    /// Every policy version, oldest first.
    History(ReadArgs),
    /// Change settings, making a new policy version (admin).
    Set(PolicySetArgs),
}

#[derive(Debug, Args)]
pub struct PolicySetArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Settings as NAME=VALUE, such as notice_hours=48 or approval.owner_only=true.
    #[arg(required = true, value_name = "NAME=VALUE")]
    pub settings: Vec<String>,
    /// Why the policy changes; kept in its version history.
    #[arg(long, required = true)]
    pub reason: String,
    /// When the new version takes effect (by default now).
    #[arg(long, value_name = "TIME")]
    pub effective: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum VersionCommand {
    /// Compare two versions by dpkg's or rpm's rules; prints <, = or >.
    Compare(CompareArgs),
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Whose rules: deb (dpkg, apt) or rpm (rpm, dnf).
    #[arg(value_enum)]
    pub format: VersionFormat,
    #[arg(allow_hyphen_values = true)]
    pub a: String,
    #[arg(allow_hyphen_values = true)]
    pub b: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VersionFormat {
    Deb,
    Rpm,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The database: sqlite:PATH or postgres://USER@HOST/DB.
    #[arg(long = "database", value_name = "URL")]
    pub url: String,
}

/// How a read command prints its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}
