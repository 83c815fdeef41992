//! `patchwarden policy …`: the policy in force, its history, and changes,
//! which the server keeps as numbered versions with their reasons.

use std::io::Write;

use serde_json::{Map, Value, json};

use crate::Outcome;
use crate::args::{PolicySetArgs, ReadArgs};
use crate::client::Api;
use crate::render::{self, text};

pub async fn show(args: &ReadArgs) -> anyhow::Result<Outcome> {
    let answer = Api::new(&args.server)?.get("/api/v1/policy").await?;
    render::answer(args.output, &answer, |out| version(out, &answer["policy"]))
}

pub async fn history(args: &ReadArgs) -> anyhow::Result<Outcome> {
    let answer = Api::new(&args.server)?.get("/api/v1/policy/history").await?;
    render::answer(args.output, &answer, |out| {
        for policy in answer["versions"].as_array().into_iter().flatten() {
            writeln!(
                out,
                "version {:<3} effective {}  by {} ({}): {}",
                text(&policy["number"]),
                text(&policy["effective"]),
                text(&policy["author_name"]),
                text(&policy["author_position"]),
                text(&policy["reason"]),
            )?;
        }
        Ok(())
    })
}

fn version(out: &mut impl Write, policy: &Value) -> std::io::Result<()> {
    writeln!(out, "policy version {}", text(&policy["number"]))?;
    writeln!(out, "effective      {}", text(&policy["effective"]))?;
    writeln!(
        out,
        "author         {} ({})",
        text(&policy["author_name"]),
        text(&policy["author_position"])
    )?;
    writeln!(out, "reason         {}", text(&policy["reason"]))?;
    writeln!(out, "settings:")?;
    settings(out, "", &policy["settings"])
}

/// Settings as dotted names, the way `policy set` takes them.
fn settings(out: &mut impl Write, prefix: &str, value: &Value) -> std::io::Result<()> {
    match value {
        Value::Object(members) => {
            for (name, member) in members {
                let dotted =
                    if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                settings(out, &dotted, member)?;
            }
            Ok(())
        }
        other => writeln!(out, "  {prefix} = {other}"),
    }
}

pub async fn set(args: &PolicySetArgs) -> anyhow::Result<Outcome> {
    let mut set = Map::new();
    for pair in &args.settings {
        let Some((name, raw)) = pair.split_once('=') else {
            anyhow::bail!("'{pair}' is not NAME=VALUE, such as notice_hours=48");
        };
        // Numbers, booleans and JSON arrays or objects as themselves; anything else as text.
        let value = serde_json::from_str(raw.trim()).unwrap_or_else(|_| json!(raw.trim()));
        set.insert(name.trim().to_owned(), value);
    }
    let mut body = json!({ "set": set, "reason": args.reason });
    if let Some(effective) = &args.effective {
        body["effective"] = json!(effective);
    }
    let answer = Api::new(&args.server)?.post("/api/v1/policy", body).await?;
    writeln!(
        render::stdout(),
        "policy version {} is in force from {}",
        text(&answer["policy"]["number"]),
        text(&answer["policy"]["effective"])
    )?;
    Ok(Outcome::Done)
}
