//! Starting a fake on a loopback port, in plain HTTP or TLS.

use std::{net::SocketAddr, sync::Arc};

use axum::Router;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto::Builder,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_rustls::{
    rustls::{
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
        ServerConfig,
    },
    TlsAcceptor,
};

/// A running fake server; dropping it stops the server.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A listener on 127.0.0.1 and a free port; bind first when the router needs its own address.
pub(crate) async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("binding a loopback port for a fake")
}

/// Serve `router` over plain HTTP.
pub(crate) fn serve(listener: TcpListener, router: Router) -> Server {
    let addr = listener.local_addr().expect("listener address");
    let task = tokio::spawn(async move {
        // An error here means the listener failed; the test then sees connection errors.
        let _ = axum::serve(listener, router).await;
    });
    Server { addr, task }
}

/// A self-signed certificate for `host` (and 127.0.0.1), made at test time.
pub(crate) struct TestCertificate {
    pub(crate) der: CertificateDer<'static>,
    pub(crate) pem: String,
    key: PrivatePkcs8KeyDer<'static>,
}

impl TestCertificate {
    pub(crate) fn for_host(host: &str) -> Self {
        let certified = rcgen::generate_simple_self_signed(vec![host.to_owned(), "127.0.0.1".to_owned()])
            .expect("generating a self-signed certificate");
        Self {
            der: certified.cert.der().clone(),
            pem: certified.cert.pem(),
            key: PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()),
        }
    }
}

/// Serve `router` over TLS with `certificate`.
pub(crate) fn serve_tls(listener: TcpListener, router: Router, certificate: &TestCertificate) -> Server {
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![certificate.der.clone()], PrivateKeyDer::Pkcs8(certificate.key.clone_key()))
        .expect("a TLS configuration from the test certificate");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let addr = listener.local_addr().expect("listener address");
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            let service = TowerToHyperService::new(router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let _ = Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    Server { addr, task }
}
