//! `healthstream instances ...`: read the instance space of a running deployment.

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::Value;

use crate::pack_cmd::ServerArgs;

#[derive(Debug, Subcommand)]
pub enum InstancesCommand {
    /// List instances: of a class (derived classes included), with a property value, or
    /// hosted by an instance.
    List {
        /// Class id.
        #[arg(long)]
        class: Option<String>,
        /// `NAME=VALUE`.
        #[arg(long)]
        property: Option<String>,
        /// Instances hosted by this instance id.
        #[arg(long)]
        host: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Follow every page, not only the first.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// One instance: properties, claiming sources, relationships, hosted tree, groups.
    Show {
        /// Instance id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub async fn run(cmd: InstancesCommand) -> anyhow::Result<()> {
    match cmd {
        InstancesCommand::List {
            class,
            property,
            host,
            limit,
            all,
            server,
        } => {
            let mut after: Option<String> = None;
            println!("{:<34} {:<28} {:<8} keys", "id", "class", "managed");
            loop {
                let mut query = vec![("limit".to_string(), limit.to_string())];
                for (k, v) in [
                    ("class", &class),
                    ("property", &property),
                    ("host", &host),
                    ("after", &after),
                ] {
                    if let Some(v) = v {
                        query.push((k.to_string(), v.clone()));
                    }
                }
                let page = get(&server.server, "/v1/instances", &query).await?;
                for i in page["instances"].as_array().into_iter().flatten() {
                    println!(
                        "{:<34} {:<28} {:<8} {}",
                        i["id"].as_str().unwrap_or(""),
                        i["class"].as_str().unwrap_or(""),
                        i["managed"],
                        i["keys"]
                    );
                }
                match page["next"].as_str() {
                    Some(n) if all => after = Some(n.to_string()),
                    Some(_) => {
                        eprintln!("(more: --all for every page)");
                        return Ok(());
                    }
                    None => return Ok(()),
                }
            }
        }
        InstancesCommand::Show { id, server } => {
            let v = get(&server.server, &format!("/v1/instances/{id}"), &[]).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
    }
}

/// GET a JSON document from the API.
pub async fn get(server: &str, path: &str, query: &[(String, String)]) -> anyhow::Result<Value> {
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let body = call(reqwest::Client::new().get(&url).query(query), server)
        .await
        .with_context(|| path.to_string())?;
    serde_json::from_str(&body).with_context(|| format!("{path}: not JSON: {body}"))
}

/// Send a request; the body on success, an error with status and body otherwise.
pub async fn call(request: reqwest::RequestBuilder, server: &str) -> anyhow::Result<String> {
    let resp = request
        .send()
        .await
        .with_context(|| format!("contacting {server}"))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    Ok(body)
}
