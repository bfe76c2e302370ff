//! Free loopback ports, held for a node's whole life.

use std::io;
use std::net::TcpListener;

use super::LaunchError;

/// A node's port (and for a cluster node its bus port, port + 10000), held for
/// the node's whole life by a socket that is bound with `SO_REUSEADDR` but not
/// listening. redis-server (which binds with `SO_REUSEADDR` too) can listen on
/// it; nobody else gets it from the kernel (`bind(0)` and outgoing connections
/// skip bound ports), also while the node is killed, so a killed node's port
/// keeps refusing connections instead of being reused by a server another
/// test (or test process) starts.
#[derive(Debug)]
pub(super) struct PortGuard {
    pub(super) port: u16,
    _sockets: Vec<socket2::Socket>,
}

pub(crate) fn reusable_socket() -> io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    Ok(socket)
}

fn loopback(port: u16) -> socket2::SockAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port)).into()
}

/// A free loopback port (not 6379), and for a cluster node one whose bus port
/// is free too, both guarded.
pub(super) fn pick_port(cluster: bool) -> Result<PortGuard, LaunchError> {
    const TRIES: u32 = 200;
    let mut detail = String::new();
    for _ in 0..TRIES {
        let attempt = || -> io::Result<Option<PortGuard>> {
            let socket = reusable_socket()?;
            socket.bind(&loopback(0))?;
            let port = socket
                .local_addr()?
                .as_socket()
                .map(|a| a.port())
                .unwrap_or(0);
            if port == 6379 || port < 1024 {
                return Ok(None);
            }
            let mut sockets = vec![socket];
            if cluster {
                let Some(bus) = port.checked_add(10000) else {
                    return Ok(None);
                };
                // Without SO_REUSEADDR first: fails if anyone has it bound.
                if bus == 6379 || TcpListener::bind(("127.0.0.1", bus)).is_err() {
                    return Ok(None);
                }
                let guard = reusable_socket()?;
                if guard.bind(&loopback(bus)).is_err() {
                    return Ok(None);
                }
                sockets.push(guard);
            }
            Ok(Some(PortGuard {
                port,
                _sockets: sockets,
            }))
        };
        match attempt() {
            Ok(Some(guard)) => return Ok(guard),
            Ok(None) => {}
            Err(e) => detail = format!("; last error: {e}"),
        }
    }
    Err(LaunchError::NoFreePort {
        attempts: TRIES,
        detail,
    })
}
