//! A master in this process for the benchmarks: the API (with or without the sync hub) on a free
//! loopback port over any store, a client with a long timeout, and a clean stop.

use std::{sync::Arc, time::Duration};

use anyhow::Result;
use calico_master::{
    api::{bind, serve, Api},
    client::Client,
    store::Store,
    sync::{SyncConfig, SyncHub},
};
use tokio::sync::oneshot;

/// The running master.
pub struct Master {
    /// Its URL.
    pub url: String,
    /// The sync hub, when started with one.
    pub hub: Option<Arc<SyncHub>>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts the API over `store`, with a sync hub when `with_hub`.
pub async fn start_master(store: Arc<dyn Store>, with_hub: bool) -> Result<Master> {
    let hub = if with_hub {
        let s = store.clone();
        Some(tokio::task::spawn_blocking(move || SyncHub::start(s, SyncConfig::default())).await??)
    } else {
        None
    };
    let mut api = Api::new(store, None);
    if let Some(h) = &hub {
        api = api.with_sync(h.clone());
    }
    let listeners = bind(&["127.0.0.1:0".parse()?]).await?;
    let url = format!("http://{}", listeners[0].local_addr()?);
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        if let Err(e) = serve(listeners, Arc::new(api), async {
            let _ = rx.await;
        })
        .await
        {
            eprintln!("serve: {e}");
        }
    });
    Ok(Master {
        url,
        hub,
        stop,
        task,
    })
}

impl Master {
    /// A client of it.
    pub fn client(&self) -> Result<Client> {
        // A 10,000-endpoint snapshot and hundreds of registrations on a loaded machine can take long;
        // give requests time rather than fail the run.
        Ok(Client::new(&[&self.url], None)?.with_timeout(Duration::from_secs(600)))
    }

    /// Stops the API and the hub.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task.await?;
        if let Some(h) = self.hub {
            tokio::task::spawn_blocking(move || h.shutdown()).await?;
        }
        Ok(())
    }
}
