//! The operator CLI: creates workspaces and API keys in the table the functions use.
//!
//! ```text
//! wapisnap-admin workspace create <id> [--name N]    the workspace and its first key (shown once)
//! wapisnap-admin key create <workspace> [--label L]  another key (shown once)
//! wapisnap-admin key list <workspace>                prefixes, labels, when created / revoked
//! wapisnap-admin key revoke <workspace> <prefix>     the key stops working at once
//! ```
//!
//! It reads `TABLE_NAME` and the standard AWS variables; `AWS_ENDPOINT_URL` means the local
//! emulator, as everywhere in this repository (`make dev` prints both). Everything is here
//! rather than in `main` so the tests run the very same commands against a local table.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::ExposeSecret;
use wapisnap::access::{self, IssueKeyError, IssuedKey, OpenWorkspaceError};
use wapisnap::aws::AwsClients;
use wapisnap::config::{ConfigError, Env, StoreConfig};
use wapisnap::domain::WorkspaceId;
use wapisnap::store::{Store, StoreError};

pub const USAGE: &str = "\
usage: wapisnap-admin <command>

  workspace create <id> [--name NAME]    create a workspace and print its first API key
  key create <workspace> [--label LABEL] issue another API key for the workspace
  key list <workspace>                   list the workspace's keys (prefixes only)
  key revoke <workspace> <prefix>        revoke a key; it fails from the next request on
  help                                   this text

environment: TABLE_NAME (required), AWS_ENDPOINT_URL (the local emulator, as `make dev` prints
it), otherwise the standard AWS credentials and region.
keys are shown once, when created; only their hash is stored.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    CreateWorkspace { id: WorkspaceId, name: Option<String> },
    CreateKey { workspace: WorkspaceId, label: Option<String> },
    ListKeys { workspace: WorkspaceId },
    RevokeKey { workspace: WorkspaceId, prefix: String },
    Help,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}\n\n{USAGE}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("workspace {0} already exists (`wapisnap-admin key create {0}` issues another key)")]
    WorkspaceExists(WorkspaceId),
    #[error(transparent)]
    OpenWorkspace(OpenWorkspaceError),
    #[error(transparent)]
    IssueKey(#[from] IssueKeyError),
    #[error("workspace {0} does not exist")]
    NoSuchWorkspace(WorkspaceId),
    #[error("workspace {workspace} has no key with prefix {prefix:?}")]
    NoSuchKey { workspace: WorkspaceId, prefix: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl AdminError {
    /// 2 for a command line or environment the CLI cannot act on (as usual for usage errors),
    /// 1 for a command that ran and failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Config(_) => 2,
            _ => 1,
        }
    }
}

fn usage(problem: impl Into<String>) -> AdminError {
    AdminError::Usage(problem.into())
}

/// Parses the arguments after the program name. Plain `std::env::args` matching: four
/// commands with one option each do not need an argument-parsing dependency.
pub fn parse(args: &[String]) -> Result<Command, AdminError> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] => Err(usage("no command given")),
        ["help" | "-h" | "--help"] => Ok(Command::Help),
        ["workspace", "create", rest @ ..] => {
            let (positional, name) = split_option(rest, "--name")?;
            let [id] = positional.as_slice() else {
                return Err(usage("workspace create takes one workspace id"));
            };
            Ok(Command::CreateWorkspace { id: workspace_id(id)?, name })
        }
        ["key", "create", rest @ ..] => {
            let (positional, label) = split_option(rest, "--label")?;
            let [workspace] = positional.as_slice() else {
                return Err(usage("key create takes one workspace id"));
            };
            Ok(Command::CreateKey { workspace: workspace_id(workspace)?, label })
        }
        ["key", "list", workspace] => Ok(Command::ListKeys { workspace: workspace_id(workspace)? }),
        ["key", "revoke", workspace, prefix] => {
            Ok(Command::RevokeKey { workspace: workspace_id(workspace)?, prefix: (*prefix).to_owned() })
        }
        ["workspace" | "key", ..] => Err(usage(format!("unknown or incomplete command: {}", words.join(" ")))),
        [other, ..] => Err(usage(format!("unknown command {other:?}"))),
    }
}

fn workspace_id(raw: &str) -> Result<WorkspaceId, AdminError> {
    WorkspaceId::parse(raw).map_err(|e| usage(format!("{raw:?} is not a workspace id: {e}")))
}

/// The positional words, and the value of `option` (`--option VALUE` or `--option=VALUE`).
fn split_option<'a>(words: &[&'a str], option: &str) -> Result<(Vec<&'a str>, Option<String>), AdminError> {
    let mut positional = Vec::new();
    let mut value = None;
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let given = if *word == option {
            Some(words.next().ok_or_else(|| usage(format!("{option} needs a value")))?.to_string())
        } else if let Some(inline) = word.strip_prefix(option).and_then(|rest| rest.strip_prefix('=')) {
            Some(inline.to_owned())
        } else if word.starts_with("--") {
            return Err(usage(format!("unknown option {word}")));
        } else {
            positional.push(*word);
            None
        };
        if let Some(given) = given {
            if value.is_some() {
                return Err(usage(format!("{option} given twice")));
            }
            let given = given.trim().to_owned();
            if given.is_empty() || given.len() > 200 {
                return Err(usage(format!("{option} must be 1 to 200 characters")));
            }
            value = Some(given);
        }
    }
    Ok((positional, value))
}

/// The table named by `TABLE_NAME`, reached through the local emulator when
/// `AWS_ENDPOINT_URL` is set (with its fixed dummy credentials, so no real AWS credentials are
/// picked up by accident) and through the standard AWS configuration otherwise.
pub async fn store_from_env(env: &Env) -> Result<Store, AdminError> {
    let table = StoreConfig::from_env(env)?.table_name;
    let aws = match env.optional("AWS_ENDPOINT_URL") {
        Some(endpoint) => AwsClients::for_emulator(&endpoint).await,
        None => AwsClients::from_env().await,
    };
    Ok(Store::new(aws.dynamodb, table))
}

/// The whole CLI after the program name: parse, reach the table, run, print to `out`.
pub async fn run(args: &[String], env: &Env, now: DateTime<Utc>, out: &mut dyn Write) -> Result<(), AdminError> {
    let command = parse(args)?;
    if command == Command::Help {
        writeln!(out, "{USAGE}")?;
        return Ok(());
    }
    let store = store_from_env(env).await?;
    execute(command, &store, now, out).await
}

pub async fn execute(
    command: Command,
    store: &Store,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    match command {
        Command::Help => writeln!(out, "{USAGE}")?,
        Command::CreateWorkspace { id, name } => {
            let name = name.unwrap_or_else(|| id.to_string());
            let opened = access::open_workspace(store, &id, &name, now).await.map_err(|e| match e {
                OpenWorkspaceError::AlreadyExists(id) => AdminError::WorkspaceExists(id),
                other => AdminError::OpenWorkspace(other),
            })?;
            writeln!(
                out,
                "workspace {} ({:?}) created {}",
                opened.workspace.id,
                opened.workspace.name,
                timestamp(now)
            )?;
            print_key(out, &id, &opened.key)?;
        }
        Command::CreateKey { workspace, label } => {
            let label = label.unwrap_or_else(|| "issued by wapisnap-admin".to_owned());
            let key = store.issue_api_key(&workspace, &label, now).await?;
            print_key(out, &workspace, &key)?;
        }
        Command::ListKeys { workspace } => {
            if store.workspace(&workspace).await?.is_none() {
                return Err(AdminError::NoSuchWorkspace(workspace));
            }
            let keys = store.api_keys(&workspace).await?;
            writeln!(out, "{:<10}  {:<20}  {:<20}  LABEL", "PREFIX", "CREATED", "REVOKED")?;
            for key in &keys {
                let revoked = key.revoked_at.map_or_else(|| "-".to_owned(), timestamp);
                writeln!(out, "{:<10}  {:<20}  {:<20}  {}", key.prefix, timestamp(key.created_at), revoked, key.label)?;
            }
            writeln!(out, "{} key(s)", keys.len())?;
        }
        Command::RevokeKey { workspace, prefix } => {
            if !store.revoke_api_key(&workspace, &prefix, now).await? {
                return Err(AdminError::NoSuchKey { workspace, prefix });
            }
            writeln!(out, "key {prefix} of workspace {workspace} revoked; it is refused from the next request on")?;
        }
    }
    Ok(())
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn print_key(out: &mut dyn Write, workspace: &WorkspaceId, key: &IssuedKey) -> std::io::Result<()> {
    writeln!(out, "API key for workspace {workspace} (prefix {}):", key.prefix)?;
    writeln!(out, "{}", key.key.expose_secret())?;
    writeln!(out, "It is shown this once: only its hash is stored. Send it as `Authorization: Bearer <key>`.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    fn ws(id: &str) -> WorkspaceId {
        WorkspaceId::parse(id).unwrap()
    }

    #[test]
    fn the_four_commands_parse() {
        assert_eq!(
            parse(&args("workspace create acme")).unwrap(),
            Command::CreateWorkspace { id: ws("acme"), name: None }
        );
        assert_eq!(
            parse(&args("workspace create acme --name Acme")).unwrap(),
            Command::CreateWorkspace { id: ws("acme"), name: Some("Acme".into()) }
        );
        assert_eq!(
            parse(&args("key create acme --label=ci")).unwrap(),
            Command::CreateKey { workspace: ws("acme"), label: Some("ci".into()) }
        );
        assert_eq!(
            parse(&args("key create --label ci acme")).unwrap(),
            Command::CreateKey { workspace: ws("acme"), label: Some("ci".into()) }
        );
        assert_eq!(parse(&args("key list acme")).unwrap(), Command::ListKeys { workspace: ws("acme") });
        assert_eq!(
            parse(&args("key revoke acme abcd1234")).unwrap(),
            Command::RevokeKey { workspace: ws("acme"), prefix: "abcd1234".into() }
        );
        assert_eq!(parse(&args("--help")).unwrap(), Command::Help);
    }

    #[test]
    fn bad_command_lines_are_usage_errors_with_exit_code_2() {
        for line in [
            "",
            "workspaces create acme",
            "workspace create",
            "workspace create a b",
            "workspace create acme --name",
            "workspace create acme --name a --name b",
            "workspace create acme --colour red",
            "workspace create acme#evil",
            "key create acme --label=",
            "key list",
            "key revoke acme",
            "key rotate acme",
        ] {
            let error = parse(&args(line)).expect_err(line);
            assert!(matches!(error, AdminError::Usage(_)), "{line}: {error}");
            assert_eq!(error.exit_code(), 2);
            assert!(error.to_string().contains("usage: wapisnap-admin"), "{line}: the usage text is shown");
        }
    }

    #[tokio::test]
    async fn a_missing_table_name_is_named_and_exits_2() {
        let mut out = Vec::new();
        let error = run(&args("key list acme"), &Env::from_pairs::<&str, &str>([]), Utc::now(), &mut out)
            .await
            .expect_err("no table");
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("TABLE_NAME"), "{error}");
    }
}
