//! `gitseal controller`: logging setup and the controller's configuration from flags.

use super::kube::{block_on, client, cluster_failure};
use super::{CmdResult, ControllerArgs, LogFormat, exit};
use tracing_subscriber::EnvFilter;

pub fn run(args: ControllerArgs) -> CmdResult {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "gitseal".into());
        format!("{host}-{}", std::process::id())
    });
    let flags = crate::controller::policy::PolicyFlags {
        allow_types: args.policy.allow_secret_types,
        deny_types: args.policy.deny_secret_types,
        allow_keys: args.policy.allow_template_keys,
        deny_keys: args.policy.deny_template_keys,
        allow_namespaces: args.policy.allow_namespaces,
        deny_namespaces: args.policy.deny_namespaces,
    };
    let policy = crate::controller::policy::Policy::new(&args.namespace, &flags)
        .map_err(super::Failure::usage)?;
    let config = crate::controller::Config {
        namespace: args.namespace,
        watch_namespaces: args.watch_namespaces,
        key_renew_interval: args.key_renew_interval,
        metrics_addr: args.metrics_addr,
        leader_elect: args.leader_elect,
        lease_duration: args.lease_duration,
        identity,
        concurrency: args.concurrency,
        policy,
        take_over: crate::unsealer::TakeOver {
            sealed_secrets: args
                .take_over_from
                .contains(&super::TakeOverFrom::SealedSecrets),
            namespaces: args.take_over_namespaces,
        },
    };
    block_on(async {
        let client = client(&args.kube).await?;
        let lease = config.leader_elect.then(|| config.lease());
        let stopped = crate::controller::run_until(client.clone(), config, shutdown());
        stopped.await.map_err(cluster_failure)?;
        // Every task `run_until` spawned has stopped: nothing writes any more.
        if let Some(lease) = lease {
            crate::controller::release_lease(&client, &lease).await;
        }
        Ok(exit::OK)
    })
}

/// SIGTERM (Kubernetes) or Ctrl-C.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}
