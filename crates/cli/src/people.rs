//! Accounts and tokens from the command line: `login`, `user …` and `token …`.
//!
//! Passwords are read from the terminal without echo (or, for scripts, from
//! the first line of standard input with `--password-stdin`) and go only to
//! the server. Tokens and invitations are printed once, to stdout, with the
//! line that puts them to use.

use std::io::{BufRead, Write};

use anyhow::Context;
use serde_json::{Value, json};

use crate::args::{
    LoginArgs, NameArgs, NamedReadArgs, ReadArgs, TokenCreateArgs, TokenRevokeArgs, UserCreateArgs,
};
use crate::client::{Api, encode};
use crate::{Outcome, render};

pub async fn login(args: &LoginArgs) -> anyhow::Result<Outcome> {
    let api = Api::new(&args.server)?;
    let answer = match (&args.invite, &args.name) {
        (Some(code), _) => {
            let password = read_password(args.password_stdin, true)?;
            let body = json!({ "code": code.trim(), "password": password });
            api.post_anonymous("/api/v1/invitations/redeem", body).await?
        }
        (None, Some(name)) => {
            let password = read_password(args.password_stdin, false)?;
            let body = json!({ "name": name.trim(), "password": password });
            api.post_anonymous("/api/v1/login", body).await?
        }
        (None, None) => anyhow::bail!(
            "say how to log in: --invite CODE (first time, sets your password) or --name NAME"
        ),
    };

    let mut out = render::stdout();
    let name = answer["account"]["name"].as_str().unwrap_or("?");
    let roles = join(&answer["account"]["roles"]);
    writeln!(out, "logged in as {name} ({roles})")?;
    writeln!(out, "your API token, shown once; keep it secret:")?;
    writeln!(out, "export PATCHWARDEN_TOKEN={}", answer["token"].as_str().unwrap_or(""))?;
    Ok(Outcome::Done)
}

/// The password, from the terminal (twice when it is being set) or stdin.
fn read_password(from_stdin: bool, new: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password")?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        if password.is_empty() {
            anyhow::bail!("standard input held no password");
        }
        return Ok(password);
    }
    let prompt = if new { "choose a password (at least 12 characters): " } else { "password: " };
    let password = rpassword::prompt_password(prompt)
        .context("cannot read a password from the terminal (use --password-stdin in scripts)")?;
    if new {
        let again = rpassword::prompt_password("the same password again: ")
            .context("cannot read a password from the terminal")?;
        if again != password {
            anyhow::bail!("the two passwords differ; nothing was changed");
        }
    }
    Ok(password)
}

pub async fn user_create(args: &UserCreateArgs) -> anyhow::Result<Outcome> {
    let api = Api::new(&args.server)?;
    let body = json!({
        "name": args.name,
        "roles": args.roles,
        "email": args.email,
        "position": args.position,
    });
    let answer = api.post("/api/v1/accounts", body).await?;
    let mut out = render::stdout();
    let account = &answer["account"];
    writeln!(
        out,
        "created {} ({})",
        account["name"].as_str().unwrap_or("?"),
        join(&account["roles"])
    )?;
    print_invitation(&mut out, &answer["invitation"])?;
    Ok(Outcome::Done)
}

pub async fn user_invite(args: &NameArgs) -> anyhow::Result<Outcome> {
    let api = Api::new(&args.server)?;
    let path = format!("/api/v1/accounts/{}/invitation", encode(&args.name));
    let answer = api.post(&path, json!({})).await?;
    let mut out = render::stdout();
    writeln!(out, "a new invitation for {}; any earlier one no longer works", args.name)?;
    print_invitation(&mut out, &answer["invitation"])?;
    Ok(Outcome::Done)
}

fn print_invitation(out: &mut impl Write, invitation: &Value) -> std::io::Result<()> {
    writeln!(out, "hand this single-use invitation to the person; it is shown once:")?;
    writeln!(out, "  patchwarden login --invite {}", invitation["code"].as_str().unwrap_or(""))?;
    writeln!(out, "  (expires {})", invitation["expires_at"].as_str().unwrap_or("?"))
}

pub async fn user_list(args: &ReadArgs) -> anyhow::Result<Outcome> {
    let answer = Api::new(&args.server)?.get("/api/v1/accounts").await?;
    render::answer(args.output, &answer, |out| {
        writeln!(out, "{:<5} {:<16} {:<28} {:<24} POSITION", "ID", "NAME", "ROLES", "E-MAIL")?;
        for account in answer["accounts"].as_array().into_iter().flatten() {
            account_row(out, account)?;
        }
        Ok(())
    })
}

pub async fn user_show(args: &NamedReadArgs) -> anyhow::Result<Outcome> {
    let api = Api::new(&args.read.server)?;
    let answer = api.get(&format!("/api/v1/accounts/{}", encode(&args.name))).await?;
    render::answer(args.read.output, &answer, |out| account_card(out, &answer["account"]))
}

pub async fn whoami(args: &ReadArgs) -> anyhow::Result<Outcome> {
    let answer = Api::new(&args.server)?.get("/api/v1/me").await?;
    render::answer(args.output, &answer, |out| account_card(out, &answer["account"]))
}

fn account_row(out: &mut impl Write, account: &Value) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<5} {:<16} {:<28} {:<24} {}",
        render::text(&account["id"]),
        render::text(&account["name"]),
        join(&account["roles"]),
        render::text(&account["email"]),
        render::text(&account["position"]),
    )
}

fn account_card(out: &mut impl Write, account: &Value) -> std::io::Result<()> {
    writeln!(out, "account   {}", render::text(&account["name"]))?;
    writeln!(out, "id        {}", render::text(&account["id"]))?;
    writeln!(out, "roles     {}", join(&account["roles"]))?;
    writeln!(out, "e-mail    {}", render::text(&account["email"]))?;
    writeln!(out, "position  {}", render::text(&account["position"]))
}

pub async fn token_create(args: &TokenCreateArgs) -> anyhow::Result<Outcome> {
    let api = Api::new(&args.server)?;
    let answer = api.post("/api/v1/tokens", json!({ "label": args.label })).await?;
    let mut out = render::stdout();
    writeln!(out, "token {} created; its value is shown once:", render::text(&answer["id"]))?;
    writeln!(out, "export PATCHWARDEN_TOKEN={}", answer["token"].as_str().unwrap_or(""))?;
    Ok(Outcome::Done)
}

pub async fn token_list(args: &ReadArgs) -> anyhow::Result<Outcome> {
    let answer = Api::new(&args.server)?.get("/api/v1/tokens").await?;
    render::answer(args.output, &answer, |out| {
        writeln!(out, "{:<5} {:<24} {:<28} REVOKED", "ID", "LABEL", "CREATED")?;
        for token in answer["tokens"].as_array().into_iter().flatten() {
            writeln!(
                out,
                "{:<5} {:<24} {:<28} {}",
                render::text(&token["id"]),
                render::text(&token["label"]),
                render::text(&token["created_at"]),
                render::text(&token["revoked_at"]),
            )?;
        }
        Ok(())
    })
}

pub async fn token_revoke(args: &TokenRevokeArgs) -> anyhow::Result<Outcome> {
    let api = Api::new(&args.server)?;
    api.post(&format!("/api/v1/tokens/{}/revoke", args.id), json!({})).await?;
    writeln!(render::stdout(), "token {} revoked", args.id)?;
    Ok(Outcome::Done)
}

/// A JSON list of strings as `a, b`.
pub fn join(value: &Value) -> String {
    match value {
        Value::Array(items) => items.iter().map(render::text).collect::<Vec<_>>().join(", "),
        other => render::text(other),
    }
}
