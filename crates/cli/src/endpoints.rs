//! `patchwarden endpoint …` and `system environment`: enrolment tokens, the
//! machines that report to the server, and how each environment is worked on.

use std::io::Write;

use serde_json::{Value, json};

use crate::Outcome;
use crate::args::{
    EndpointListArgs, EndpointRevokeArgs, EndpointShowArgs, EnrollTokenArgs, Environment,
    EnvironmentArgs, Output,
};
use crate::client::{Api, encode};
use crate::render::{self, text};

fn environment_name(environment: Environment) -> &'static str {
    match environment {
        Environment::Test => "test",
        Environment::Prod => "prod",
    }
}

pub async fn enroll_token(args: &EnrollTokenArgs) -> anyhow::Result<Outcome> {
    let body = json!({ "system": args.system, "environment": environment_name(args.environment) });
    let answer = Api::new(&args.server)?.post("/api/v1/endpoints/enrolment-tokens", body).await?;
    let mut out = render::stdout();
    writeln!(
        out,
        "a single-use enrolment token for {} ({}), valid until {}:",
        text(&answer["system"]),
        text(&answer["environment"]),
        text(&answer["expires_at"])
    )?;
    writeln!(
        out,
        "  patchwarden-agent enroll --server {} --token {}",
        args.server.server,
        text(&answer["token"])
    )?;
    Ok(Outcome::Done)
}

pub async fn list(args: &EndpointListArgs) -> anyhow::Result<Outcome> {
    let path = match &args.system {
        Some(system) => format!("/api/v1/endpoints?system={}", encode(system)),
        None => "/api/v1/endpoints".to_owned(),
    };
    let answer = Api::new(&args.read.server)?.get(&path).await?;
    render::answer(args.read.output, &answer, |out| {
        let endpoints = answer["endpoints"].as_array().map_or(&[][..], Vec::as_slice);
        if endpoints.is_empty() {
            return writeln!(out, "no endpoints enrolled");
        }
        writeln!(
            out,
            "{:<5} {:<24} {:<16} {:<5} {:<28} STATUS",
            "ID", "HOSTNAME", "SYSTEM", "ENV", "LAST SEEN"
        )?;
        for e in endpoints {
            let status = if e["revoked_at"].is_null() { "active" } else { "revoked" };
            writeln!(
                out,
                "{:<5} {:<24} {:<16} {:<5} {:<28} {status}",
                text(&e["id"]),
                text(&e["hostname"]),
                text(&e["system"]),
                text(&e["environment"]),
                text(&e["last_seen_at"]),
            )?;
        }
        Ok(())
    })
}

pub async fn show(args: &EndpointShowArgs) -> anyhow::Result<Outcome> {
    let api = Api::new(&args.read.server)?;
    let answer = api.get(&format!("/api/v1/endpoints/{}", encode(args.id.trim()))).await?;
    let full = if args.packages {
        Some(api.get(&format!("/api/v1/endpoints/{}/inventory", encode(args.id.trim()))).await?)
    } else {
        None
    };
    if args.read.output == Output::Json {
        let mut answer = answer;
        if let Some(full) = full {
            answer["inventory_full"] = full["inventory"].clone();
        }
        return render::answer(Output::Json, &answer, |_| Ok(()));
    }
    render::answer(Output::Text, &answer, |out| {
        let e = &answer["endpoint"];
        writeln!(out, "endpoint     {} ({})", text(&e["id"]), text(&e["hostname"]))?;
        writeln!(out, "system       {} / {}", text(&e["system"]), text(&e["environment"]))?;
        writeln!(out, "enrolled     {}", text(&e["enrolled_at"]))?;
        writeln!(
            out,
            "last seen    {} (clock offset {} ms)",
            text(&e["last_seen_at"]),
            text(&e["clock_offset_ms"])
        )?;
        if !e["revoked_at"].is_null() {
            writeln!(out, "revoked      {}", text(&e["revoked_at"]))?;
        }
        let inventory = &answer["inventory"];
        if inventory.is_null() {
            return writeln!(out, "no inventory has arrived yet");
        }
        writeln!(out, "os           {}", text(&inventory["os"]["pretty_name"]))?;
        writeln!(out, "kernel       {} running", text(&inventory["running_kernel"]))?;
        let reboot = &inventory["reboot"];
        let reboot_text = if reboot["required"] == true { "required" } else { "not required" };
        writeln!(out, "reboot       {reboot_text}")?;
        let updaters: Vec<String> = inventory["competing_updaters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|u| format!("{} ({})", text(&u["kind"]), text(&u["evidence"])))
            .collect();
        if !updaters.is_empty() {
            writeln!(out, "other updaters enabled: {}", updaters.join(", "))?;
        }
        writeln!(out, "packages     {} installed", text(&inventory["packages"]))?;
        let pending = inventory["pending"].as_array().map_or(&[][..], Vec::as_slice);
        writeln!(
            out,
            "pending      {} ({} security)",
            pending.len(),
            text(&inventory["pending_security"])
        )?;
        for update in pending {
            let mark = if update["security"] == true { "security" } else { "" };
            let kept = if update["kept_back"].is_null() {
                String::new()
            } else {
                format!(" kept back: {}", text(&update["kept_back"]))
            };
            writeln!(
                out,
                "  {:<32} {} -> {} {mark}{kept}",
                text(&update["name"]),
                text(&update["installed"]),
                text(&update["candidate"])
            )?;
        }
        if let Some(full) = &full {
            for package in full["inventory"]["packages"].as_array().into_iter().flatten() {
                writeln!(
                    out,
                    "  installed {:<32} {} {}",
                    text(&package["name"]),
                    text(&package["version"]),
                    text(&package["state"])
                )?;
            }
        }
        Ok(())
    })
}

pub async fn revoke(args: &EndpointRevokeArgs) -> anyhow::Result<Outcome> {
    let path = format!("/api/v1/endpoints/{}/revoke", encode(args.id.trim()));
    Api::new(&args.server)?.post(&path, json!({})).await?;
    writeln!(render::stdout(), "endpoint {} revoked", args.id.trim())?;
    Ok(Outcome::Done)
}

pub async fn environment(args: &EnvironmentArgs) -> anyhow::Result<Outcome> {
    let path = format!(
        "/api/v1/systems/{}/environments/{}",
        encode(&args.name),
        environment_name(args.environment)
    );
    let api = Api::new(&args.read.server)?;
    let answer = match &args.set {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|err| anyhow::anyhow!("cannot read '{}': {err}", file.display()))?;
            let settings: Value = serde_json::from_str(&text)
                .map_err(|err| anyhow::anyhow!("'{}' is not JSON: {err}", file.display()))?;
            api.put(&path, settings).await?
        }
        None => api.get(&path).await?,
    };
    render::answer(args.read.output, &answer, |out| {
        let settings = &answer["settings"];
        writeln!(out, "{} / {}", text(&answer["system"]), text(&answer["environment"]))?;
        writeln!(out, "rollback on a failed check  {}", text(&settings["rollback_on_failure"]))?;
        writeln!(out, "reboot                      {}", text(&settings["reboot"]))?;
        writeln!(out, "recover interrupted dpkg    {}", text(&settings["recover_interrupted"]))?;
        writeln!(out, "keep local config files     {}", text(&settings["keep_local_config"]))?;
        let checks = settings["health_checks"].as_array().map_or(&[][..], Vec::as_slice);
        writeln!(
            out,
            "health checks               {}",
            if checks.is_empty() { "none" } else { "" }
        )?;
        for check in checks {
            writeln!(
                out,
                "  {} (timeout {} s, {} retries)",
                check["check"],
                text(&check["timeout_seconds"]),
                text(&check["retries"])
            )?;
        }
        Ok(())
    })
}

/// `patchwarden request jobs ID`.
pub async fn request_jobs(args: &crate::args::RequestShowArgs) -> anyhow::Result<Outcome> {
    let path = format!("/api/v1/requests/{}/jobs", encode(args.id.trim()));
    let answer = Api::new(&args.read.server)?.get(&path).await?;
    render::answer(args.read.output, &answer, |out| {
        let jobs = answer["jobs"].as_array().map_or(&[][..], Vec::as_slice);
        if jobs.is_empty() {
            return writeln!(out, "no jobs for request {}", text(&answer["request"]));
        }
        writeln!(
            out,
            "{:<5} {:<9} {:<5} {:<28} {:<12} DETAIL",
            "JOB", "ENDPOINT", "ENV", "WINDOW END", "OUTCOME"
        )?;
        for job in jobs {
            let report = &job["report"];
            let detail = report
                .get("detail")
                .or_else(|| report.get("outcome").and_then(|o| o.get("detail")))
                .map(text)
                .unwrap_or_default();
            writeln!(
                out,
                "{:<5} {:<9} {:<5} {:<28} {:<12} {}",
                text(&job["id"]),
                text(&job["endpoint"]),
                text(&job["environment"]),
                text(&job["window_end"]),
                text(&job["outcome"]),
                detail
            )?;
        }
        Ok(())
    })
}
