//! `patchwarden system …`: creating systems and reading them through the API.

use std::io::Write;

use serde_json::json;

use crate::Outcome;
use crate::args::{NamedReadArgs, ReadArgs, SystemCreateArgs};
use crate::client::{Api, encode};
use crate::people::join;
use crate::render::{self, text};

pub async fn create(args: &SystemCreateArgs) -> anyhow::Result<Outcome> {
    let body = json!({
        "name": args.name,
        "owner": args.owner,
        "deputy": args.deputy,
        "stakeholders": args.stakeholders,
        "notify": args.notify,
        "time_zone": args.time_zone,
    });
    let answer = Api::new(&args.server)?.post("/api/v1/systems", body).await?;
    let system = &answer["system"];
    writeln!(
        render::stdout(),
        "created system {} (owner {}, time zone {})",
        text(&system["name"]),
        text(&system["owner"]),
        text(&system["time_zone"])
    )?;
    Ok(Outcome::Done)
}

pub async fn list(args: &ReadArgs) -> anyhow::Result<Outcome> {
    let answer = Api::new(&args.server)?.get("/api/v1/systems").await?;
    render::answer(args.output, &answer, |out| {
        writeln!(
            out,
            "{:<20} {:<12} {:<12} {:<18} NOTIFY",
            "NAME", "OWNER", "DEPUTY", "TIME ZONE"
        )?;
        for system in answer["systems"].as_array().into_iter().flatten() {
            writeln!(
                out,
                "{:<20} {:<12} {:<12} {:<18} {}",
                text(&system["name"]),
                text(&system["owner"]),
                text(&system["deputy"]),
                text(&system["time_zone"]),
                join(&system["notify"]),
            )?;
        }
        Ok(())
    })
}

pub async fn show(args: &NamedReadArgs) -> anyhow::Result<Outcome> {
    let path = format!("/api/v1/systems/{}", encode(&args.name));
    let answer = Api::new(&args.read.server)?.get(&path).await?;
    render::answer(args.read.output, &answer, |out| {
        let system = &answer["system"];
        writeln!(out, "system        {}", text(&system["name"]))?;
        writeln!(out, "owner         {}", text(&system["owner"]))?;
        writeln!(out, "deputy        {}", text(&system["deputy"]))?;
        writeln!(out, "stakeholders  {}", join(&system["stakeholders"]))?;
        writeln!(out, "notify        {}", join(&system["notify"]))?;
        writeln!(out, "time zone     {}", text(&system["time_zone"]))?;
        writeln!(out, "documentation revision {}", text(&system["documentation_revision"]))
    })
}

pub async fn documentation(args: &NamedReadArgs) -> anyhow::Result<Outcome> {
    let path = format!("/api/v1/systems/{}/documentation", encode(&args.name));
    let answer = Api::new(&args.read.server)?.get(&path).await?;
    render::answer(args.read.output, &answer, |out| {
        let revisions = answer["revisions"].as_array().map_or(&[][..], Vec::as_slice);
        if revisions.is_empty() {
            return writeln!(out, "no documentation revisions for {}", args.name);
        }
        for revision in revisions {
            writeln!(
                out,
                "revision {}  request {}  by {} at {}: {}",
                text(&revision["number"]),
                text(&revision["request"]),
                text(&revision["recorded_by"]),
                text(&revision["recorded_at"]),
                text(&revision["summary"]),
            )?;
        }
        Ok(())
    })
}
