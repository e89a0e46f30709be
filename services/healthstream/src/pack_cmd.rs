//! `healthstream pack ...`: validate, explain, import SCOM packs, and manage the packs of a
//! running deployment.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use healthstream_model::load::{load_paths, LoadedPack};
use healthstream_model::overrides::{resolve, resolve_all, InstanceContext};
use healthstream_model::pack::ElementKind;
use healthstream_model::validate::validate;
use healthstream_model::{scom, shipped, Catalog};

#[derive(Debug, Subcommand)]
pub enum PackCommand {
    /// Validate pack files and directories: every problem with file, line, element and what
    /// is wrong. Referenced shipped packs are added when not given. Exits non-zero on problems.
    Validate {
        /// Pack files or directories (`*.toml`, recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Explain the effective parameters of a workflow for an instance: every override that
    /// applies, the precedence rule that decided, and the winner.
    Explain(ExplainArgs),
    /// Convert SCOM management pack XML into native packs, with a report of every element.
    ImportScom {
        /// Management pack XML files (unsealed; UTF-8 or UTF-16).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Directory the native packs are written to (`<pack id>.toml`).
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Packs already present (files or directories), besides the shipped ones: references
        /// to packs found neither there nor among the shipped ones are reported as missing.
        #[arg(long = "packs")]
        packs: Vec<PathBuf>,
    },
    /// Summarize packs: id, version, sealing, references and element counts.
    Show {
        /// Pack files or directories; none: the shipped packs.
        paths: Vec<PathBuf>,
    },
    /// Import (or upgrade) packs into a running deployment through its API.
    Import {
        /// Pack files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove a pack from a running deployment (refused while other packs reference it).
    Remove {
        /// Pack id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the packs in force in a running deployment.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Base URL of the healthstream API.
    #[arg(
        long,
        env = "HEALTHSTREAM_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The discovery, rule, monitor, diagnostic or recovery.
    pub workflow: String,
    /// The instance id.
    #[arg(long)]
    pub instance: String,
    /// The instance's class; default: the workflow's target class.
    #[arg(long)]
    pub class: Option<String>,
    /// A host of the instance, nearest first: `ID=CLASS` (repeatable).
    #[arg(long = "host", value_name = "ID=CLASS")]
    pub hosts: Vec<String>,
    /// A group the instance is a member of; `GROUP@N` when the member is its host N levels up
    /// (repeatable).
    #[arg(long = "group", value_name = "GROUP[@N]")]
    pub groups: Vec<String>,
    /// Only this parameter.
    #[arg(long)]
    pub parameter: Option<String>,
    /// Pack files or directories to load besides the shipped packs.
    #[arg(long = "packs")]
    pub packs: Vec<PathBuf>,
    /// Look the instance up in a running deployment (class, hosts, groups) at this API URL;
    /// `--class`, `--host` and `--group` add to or replace what it says.
    #[arg(long)]
    pub server: Option<String>,
}

pub async fn run(cmd: PackCommand) -> anyhow::Result<()> {
    match cmd {
        PackCommand::Validate { paths } => validate_cmd(&paths),
        PackCommand::Explain(args) => explain(args).await,
        PackCommand::ImportScom { files, out, packs } => import_scom(&files, &out, &packs),
        PackCommand::Show { paths } => show(&paths),
        PackCommand::Import { files, server } => remote_import(&files, &server.server).await,
        PackCommand::Remove { id, server } => remote_remove(&id, &server.server).await,
        PackCommand::List { server } => remote_list(&server.server).await,
    }
}

/// Load paths, then add the shipped packs that are not among them.
fn load_with_shipped(
    paths: &[PathBuf],
) -> anyhow::Result<(Vec<LoadedPack>, Vec<healthstream_model::Problem>)> {
    let (mut packs, problems) = load_paths(paths);
    let have: BTreeSet<String> = packs.iter().map(|p| p.pack.pack.id.clone()).collect();
    for s in shipped().map_err(|p| anyhow::anyhow!("shipped pack: {p}"))? {
        if !have.contains(&s.pack.pack.id) {
            packs.push(s);
        }
    }
    Ok((packs, problems))
}

fn validate_cmd(paths: &[PathBuf]) -> anyhow::Result<()> {
    let (packs, mut problems) = load_with_shipped(paths)?;
    let given: Vec<String> = packs
        .iter()
        .map(|p| format!("{} {}", p.pack.pack.id, p.pack.pack.version))
        .collect();
    let catalog = Catalog::new(packs);
    problems.extend(validate(&catalog));
    for p in &problems {
        println!("{p}");
    }
    let n = catalog.packs().len();
    if problems.is_empty() {
        println!("{n} packs valid: {}", given.join(", "));
        Ok(())
    } else {
        bail!("{} problem(s) in {n} pack(s)", problems.len())
    }
}

async fn explain(mut args: ExplainArgs) -> anyhow::Result<()> {
    if let Some(server) = args.server.clone() {
        fill_from_server(&mut args, &server).await?;
    }
    let (packs, problems) = load_with_shipped(&args.packs)?;
    if let Some(p) = problems.first() {
        bail!("{p}");
    }
    let catalog = Catalog::new(packs);
    let class = match args.class {
        Some(c) => c,
        None => {
            let w = catalog.workflow(&args.workflow).with_context(|| {
                format!(
                    "no discovery, rule, monitor, diagnostic or recovery has id {:?}",
                    args.workflow
                )
            })?;
            healthstream_model::overrides::workflow_target(&catalog, w)
                .context("the workflow's target is unknown: give --class")?
                .to_string()
        }
    };
    let mut hosts = Vec::new();
    for h in &args.hosts {
        let (id, class) = h
            .split_once('=')
            .with_context(|| format!("--host {h:?} is not ID=CLASS"))?;
        hosts.push((id.to_string(), class.to_string()));
    }
    let mut groups = Vec::new();
    for g in &args.groups {
        let (group, hops) = match g.split_once('@') {
            Some((g, n)) => (
                g,
                n.parse::<usize>()
                    .with_context(|| format!("--group {g:?}: N is not a number"))?,
            ),
            None => (g.as_str(), 0),
        };
        if catalog.group(group).is_none() {
            bail!("--group {group:?}: no such group in the loaded packs");
        }
        groups.push((group.to_string(), hops));
    }
    let ctx = InstanceContext {
        id: args.instance,
        class,
        hosts,
        groups,
    };
    let resolutions = match &args.parameter {
        Some(p) => vec![resolve(&catalog, &args.workflow, p, &ctx)?],
        None => resolve_all(&catalog, &args.workflow, &ctx)?,
    };
    println!("{} for instance {} ({})", args.workflow, ctx.id, ctx.class);
    for r in resolutions {
        print!("{r}");
    }
    Ok(())
}

fn import_scom(files: &[PathBuf], out: &Path, packs: &[PathBuf]) -> anyhow::Result<()> {
    let (present_packs, problems) = load_with_shipped(packs)?;
    if let Some(p) = problems.first() {
        bail!("{p}");
    }
    let present = present_packs
        .iter()
        .map(|p| (p.pack.pack.id.clone(), p.pack.pack.version.clone()))
        .collect();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut failed = 0;
    for f in files {
        match scom::import_file(f, &present) {
            Ok(imp) => {
                let text = imp.pack.to_toml().context("writing the native pack")?;
                let path = out.join(format!("{}.toml", imp.pack.pack.id));
                let header = format!(
                    "# Imported from SCOM management pack {} {} ({}).\n# See the import report for what changed.\n\n",
                    imp.report.pack,
                    imp.report.version,
                    f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
                );
                std::fs::write(&path, format!("{header}{text}"))
                    .with_context(|| format!("writing {}", path.display()))?;
                print!("{}", imp.report);
                println!("  written to {}", path.display());
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} file(s) could not be imported", files.len());
    }
    Ok(())
}

fn show(paths: &[PathBuf]) -> anyhow::Result<()> {
    let (packs, problems) = if paths.is_empty() {
        (shipped().map_err(|p| anyhow::anyhow!("{p}"))?, vec![])
    } else {
        load_paths(paths)
    };
    for p in &problems {
        println!("{p}");
    }
    for lp in &packs {
        let m = &lp.pack.pack;
        println!(
            "{} {}{} ({})",
            m.id,
            m.version,
            if m.sealed { " sealed" } else { "" },
            lp.file.display()
        );
        for r in &lp.pack.references {
            println!("  references {} >= {}", r.pack, r.version);
        }
        let mut counts = std::collections::BTreeMap::new();
        for (k, _) in lp.pack.elements() {
            *counts.entry(k).or_insert(0usize) += 1;
        }
        let line: Vec<String> = ElementKind::ALL
            .iter()
            .filter_map(|k| counts.get(k).map(|n| format!("{n} {k}")))
            .collect();
        println!("  {}", line.join(", "));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{} file(s) could not be read", problems.len())
    }
}

async fn remote_import(files: &[PathBuf], server: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let resp = client
            .post(format!("{}/v1/packs", server.trim_end_matches('/')))
            .header("content-type", "application/toml")
            .body(text)
            .send()
            .await
            .with_context(|| format!("sending {} to {server}", f.display()))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{}: {status}: {body}", f.display());
        }
        println!("{}: {body}", f.display());
    }
    Ok(())
}

async fn remote_remove(id: &str, server: &str) -> anyhow::Result<()> {
    let url = format!("{}/v1/packs/{id}", server.trim_end_matches('/'));
    println!(
        "{}",
        crate::instances_cmd::call(reqwest::Client::new().delete(url), server).await?
    );
    Ok(())
}

async fn remote_list(server: &str) -> anyhow::Result<()> {
    let url = format!("{}/v1/packs", server.trim_end_matches('/'));
    println!(
        "{}",
        crate::instances_cmd::call(reqwest::Client::new().get(url), server).await?
    );
    Ok(())
}

/// Fill an explain request from the instance space: the instance's class, its hosts (nearest
/// first) and the groups it and its hosts are members of.
async fn fill_from_server(args: &mut ExplainArgs, server: &str) -> anyhow::Result<()> {
    let one =
        crate::instances_cmd::get(server, &format!("/v1/instances/{}", args.instance), &[]).await?;
    if args.class.is_none() {
        args.class = one["instance"]["class"].as_str().map(str::to_string);
    }
    let groups_of = |v: &serde_json::Value| -> Vec<String> {
        v["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["group"].as_str().map(str::to_string))
            .collect()
    };
    let mut found_groups: Vec<String> = groups_of(&one)
        .into_iter()
        .map(|g| format!("{g}@0"))
        .collect();
    let mut found_hosts = Vec::new();
    let mut next = one["instance"]["host_id"].as_str().map(str::to_string);
    let mut hops = 0;
    while let Some(h) = next.take() {
        hops += 1;
        if hops > 32 {
            break;
        }
        let host = crate::instances_cmd::get(server, &format!("/v1/instances/{h}"), &[]).await?;
        found_hosts.push(format!(
            "{h}={}",
            host["instance"]["class"].as_str().unwrap_or("")
        ));
        found_groups.extend(groups_of(&host).into_iter().map(|g| format!("{g}@{hops}")));
        next = host["instance"]["host_id"].as_str().map(str::to_string);
    }
    if args.hosts.is_empty() {
        args.hosts = found_hosts;
    }
    found_groups.extend(std::mem::take(&mut args.groups));
    args.groups = found_groups;
    Ok(())
}
