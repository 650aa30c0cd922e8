//! Reaching the cluster from the CLI: a client from kubectl's flags, a tokio runtime for the
//! commands that need one (offline commands never start it), and the reads several commands share.

use super::{Failure, KubeArgs, exit};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Run an async command on a fresh multi-threaded runtime.
pub fn block_on<T>(f: impl std::future::Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            code: exit::PROBLEMS,
            message: format!("cannot start the async runtime: {e}"),
        })?
        .block_on(f)
}

/// A failure reaching or talking to the cluster.
pub fn cluster_failure(e: impl std::fmt::Display) -> Failure {
    Failure {
        code: exit::CLUSTER,
        message: e.to_string(),
    }
}

/// A client for `--kubeconfig` / `--context`, else kubectl's defaults, else in-cluster.
pub async fn client(args: &KubeArgs) -> Result<kube::Client, Failure> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let config = match &args.kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| cluster_failure(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(cluster_failure)?
        }
        None if args.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(cluster_failure)?,
        None => kube::Config::infer().await.map_err(cluster_failure)?,
    };
    kube::Client::try_from(config).map_err(cluster_failure)
}

/// Every SealingKey of the cluster, oldest first.
pub async fn sealing_keys(client: &kube::Client) -> Result<Vec<crate::api::SealingKey>, Failure> {
    let mut keys = kube::Api::<crate::api::SealingKey>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(|e| cluster_failure(format!("cannot list SealingKeys: {e}")))?
        .items;
    keys.sort_by_key(|k| kube::ResourceExt::creation_timestamp(k).map(|t| t.0));
    Ok(keys)
}
