// Test-only Neo4j 5 launcher for memoryd's integration tests and benchmarks.
//
// Run by tests/neo4j/server.sh as a single-file source program:
//   java -cp "$CP" tests/neo4j/Launcher.java --home DIR --ready-file FILE [options]
// where $CP is the neo4j-harness runtime classpath resolved from tests/neo4j/pom.xml.
//
// It starts Neo4j in-process through org.neo4j.harness (community edition),
// binds every connector to 127.0.0.1 on an OS-chosen free port (port 0, so no
// collisions and no pick-then-bind race), turns authentication on, sets the
// password of the built-in `neo4j` user (and optionally creates another user),
// waits until the HTTP endpoint answers, writes the ready file, then blocks
// until SIGTERM/SIGINT (or stdin EOF with --exit-on-stdin-eof) and closes
// Neo4j cleanly.
//
// Credentials are read from the environment (NEO4J_USERNAME / NEO4J_PASSWORD)
// rather than argv so that they do not show up in `ps`.
//
// Options:
//   --home DIR              Neo4j home (data, transaction logs, neo4j.log, debug.log).
//   --ready-file FILE       Written atomically once HTTP answers: key=value lines
//                           http_uri=..., https_uri=... (if TLS), bolt_uri=... (if bolt).
//   --tls-dir DIR           Enable the HTTPS connector, serving DIR/private.key and
//                           DIR/public.crt (PEM, PKCS#8 key).
//   --bolt                  Also enable the Bolt connector (disabled by default).
//   --http-port N           Fixed HTTP port instead of 0 (= any free port).
//   --https-port N          Fixed HTTPS port instead of 0.
//   --bolt-port N           Fixed Bolt port instead of 0.
//   --pagecache-mb N        Page cache size in MiB (default 128).
//   --exit-on-stdin-eof     Also shut down when standard input reaches EOF.

import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Method;
import java.net.HttpURLConnection;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.graphdb.Transaction;
import org.neo4j.harness.Neo4j;
import org.neo4j.harness.Neo4jBuilder;
import org.neo4j.harness.Neo4jBuilders;

public class Launcher {
    private static final String LOOPBACK = "127.0.0.1";

    private static void log(String msg) {
        System.err.println("[neo4j-launcher] " + msg);
        System.err.flush();
    }

    private static void die(String msg, Throwable t) {
        log("FATAL: " + msg);
        if (t != null) t.printStackTrace(System.err);
        System.err.flush();
        // halt, not exit: never run a half-initialised shutdown path.
        Runtime.getRuntime().halt(1);
    }

    public static void main(String[] args) throws Exception {
        Path home = null, readyFile = null, tlsDir = null;
        boolean bolt = false, stdinEof = false;
        int httpPort = 0, httpsPort = 0, boltPort = 0;
        long pagecacheMb = 128;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "--home": home = Paths.get(args[++i]).toAbsolutePath(); break;
                case "--ready-file": readyFile = Paths.get(args[++i]).toAbsolutePath(); break;
                case "--tls-dir": tlsDir = Paths.get(args[++i]).toAbsolutePath(); break;
                case "--bolt": bolt = true; break;
                case "--http-port": httpPort = Integer.parseInt(args[++i]); break;
                case "--https-port": httpsPort = Integer.parseInt(args[++i]); break;
                case "--bolt-port": boltPort = Integer.parseInt(args[++i]); break;
                case "--pagecache-mb": pagecacheMb = Long.parseLong(args[++i]); break;
                case "--exit-on-stdin-eof": stdinEof = true; break;
                default: die("unknown argument: " + a, null);
            }
        }
        if (home == null || readyFile == null) die("--home and --ready-file are required", null);

        Map<String, String> env = System.getenv();
        String user = env.getOrDefault("NEO4J_USERNAME", "neo4j");
        String password = env.get("NEO4J_PASSWORD");
        if (user.isEmpty()) user = "neo4j";
        if (password == null || password.isEmpty()) die("NEO4J_PASSWORD must be set (non-empty)", null);
        if ("neo4j".equals(user) && "neo4j".equals(password))
            die("password 'neo4j' is the built-in initial password and cannot be re-set; choose another", null);
        if (!user.matches("[A-Za-z0-9_.@-]+"))
            die("NEO4J_USERNAME must match [A-Za-z0-9_.@-]+ (got '" + user + "')", null);

        Files.createDirectories(home);
        Files.deleteIfExists(readyFile);

        Neo4jBuilder builder = Neo4jBuilders.newInProcessBuilder(home);
        // The harness always puts Neo4j's home in a random md5-named sub-folder of the
        // given directory and deletes it on close() (which loses the logs and makes the
        // TLS certificate location unpredictable). Point it at `home` itself through the
        // builder's private setDirectory(Path): a non-md5 folder name is kept on close().
        boolean fixedHome = false;
        try {
            Method m = builder.getClass().getSuperclass().getDeclaredMethod("setDirectory", Path.class);
            m.setAccessible(true);
            m.invoke(builder, home);
            fixedHome = true;
        } catch (ReflectiveOperationException | RuntimeException e) {
            log("warning: could not pin the harness home directory (" + e + "); using a random sub-folder of " + home);
        }

        builder.withConfig(GraphDatabaseSettings.auth_enabled, true)
               // Tests deliberately send wrong passwords; never lock the real user out.
               .withConfig(GraphDatabaseSettings.auth_max_failed_attempts, 0)
               .withConfig(GraphDatabaseSettings.pagecache_memory, pagecacheMb * 1024L * 1024L)
               // Throw-away test data: do not fallocate 256 MiB transaction log files.
               .withConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
               .withConfig(GraphDatabaseSettings.default_listen_address, new SocketAddress(LOOPBACK))
               .withConfig(GraphDatabaseSettings.default_advertised_address, new SocketAddress(LOOPBACK))
               // Server-side routing would otherwise listen on the fixed port 7688.
               .withConfig(GraphDatabaseSettings.routing_enabled, false)
               .withConfig(GraphDatabaseSettings.routing_listen_address, new SocketAddress(LOOPBACK, 0))
               .withConfig(HttpConnector.enabled, true)
               .withConfig(HttpConnector.listen_address, new SocketAddress(LOOPBACK, httpPort))
               .withConfig(HttpConnector.advertised_address, new SocketAddress(LOOPBACK, httpPort))
               .withConfig(BoltConnector.enabled, bolt)
               .withConfig(BoltConnector.listen_address, new SocketAddress(LOOPBACK, boltPort))
               .withConfig(BoltConnector.advertised_address, new SocketAddress(LOOPBACK, boltPort))
               .withConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
               .withConfig(HttpsConnector.enabled, tlsDir != null)
               .withConfig(HttpsConnector.listen_address, new SocketAddress(LOOPBACK, httpsPort))
               .withConfig(HttpsConnector.advertised_address, new SocketAddress(LOOPBACK, httpsPort));

        if (tlsDir != null) {
            // When HTTPS is on, the harness's build() forces the `https` SSL policy
            // (dbms.ssl.policy.https.*) to base_directory=<home>/certificates and only
            // generates its own self-signed key pair there (SAN=localhost only) if
            // private.key/public.crt are not both present. Pre-seed them with ours.
            if (!fixedHome) die("--tls-dir needs the pinned home directory (see warning above)", null);
            Path certs = home.resolve("certificates");
            Files.createDirectories(certs);
            for (String f : new String[] {"private.key", "public.crt"}) {
                Path src = tlsDir.resolve(f);
                if (!Files.isRegularFile(src)) die("missing TLS file " + src, null);
                Files.copy(src, certs.resolve(f), StandardCopyOption.REPLACE_EXISTING);
            }
        }

        log(String.format("starting Neo4j (home %s; JVM up %.1f s)", home,
                java.lang.management.ManagementFactory.getRuntimeMXBean().getUptime() / 1e3));
        long t0 = System.nanoTime();
        final Neo4j neo4j;
        try {
            neo4j = builder.build();
        } catch (Throwable t) {
            die("Neo4j failed to start", t);
            return;
        }
        log(String.format("Neo4j started in %.1f s", (System.nanoTime() - t0) / 1e9));

        final CountDownLatch stop = new CountDownLatch(1);
        final CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stop.countDown();
            try {
                closed.await();
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
        }, "neo4j-launcher-shutdown"));

        try {
            setUpUsers(neo4j, user, password);
            URI http = neo4j.httpURI();
            waitForHttp(http, 60_000);
            StringBuilder ready = new StringBuilder();
            ready.append("http_uri=").append(stripSlash(http)).append('\n');
            if (tlsDir != null) ready.append("https_uri=").append(stripSlash(neo4j.httpsURI())).append('\n');
            if (bolt) ready.append("bolt_uri=").append(neo4j.boltURI()).append('\n');
            ready.append("pid=").append(ProcessHandle.current().pid()).append('\n');
            Path tmp = readyFile.resolveSibling(readyFile.getFileName() + ".tmp");
            Files.write(tmp, ready.toString().getBytes(StandardCharsets.UTF_8));
            Files.move(tmp, readyFile, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            log("ready: " + ready.toString().replace('\n', ' ').trim() + String.format(" (JVM up %.1f s)",
                    java.lang.management.ManagementFactory.getRuntimeMXBean().getUptime() / 1e3));
        } catch (Throwable t) {
            log("FATAL: post-start setup failed");
            t.printStackTrace(System.err);
            closeQuietly(neo4j);
            Runtime.getRuntime().halt(1);
        }

        if (stdinEof) {
            Thread t = new Thread(() -> {
                try {
                    InputStream in = System.in;
                    byte[] buf = new byte[256];
                    while (in.read(buf) >= 0) { /* discard */ }
                } catch (IOException ignored) {
                }
                log("stdin closed; shutting down");
                stop.countDown();
            }, "neo4j-launcher-stdin");
            t.setDaemon(true);
            t.start();
        }

        stop.await();
        log("shutting down Neo4j");
        closeQuietly(neo4j);
        log("Neo4j stopped");
        closed.countDown();
        // Returning from main lets the JVM exit (or finishes the shutdown hook).
        System.exit(0);
    }

    private static void setUpUsers(Neo4j neo4j, String user, String password) {
        GraphDatabaseService system = neo4j.databaseManagementService().database("system");
        try (Transaction tx = system.beginTx()) {
            tx.execute("ALTER USER neo4j SET PASSWORD $pw CHANGE NOT REQUIRED", Map.of("pw", password)).close();
            tx.commit();
        } catch (RuntimeException e) {
            // `server.sh restart` keeps the system database: the password may already be set.
            if (!saysAnywhere(e, "cannot be the same")) throw e;
            log("password of neo4j already set (restart on existing data)");
        }
        if (!"neo4j".equals(user)) {
            try (Transaction tx = system.beginTx()) {
                tx.execute("CREATE USER `" + user + "` IF NOT EXISTS SET PASSWORD $pw CHANGE NOT REQUIRED",
                        Map.of("pw", password)).close();
                tx.commit();
            }
            try (Transaction tx = system.beginTx()) {
                tx.execute("GRANT ROLE admin TO `" + user + "`").close();
                tx.commit();
                log("granted role admin to " + user);
            } catch (RuntimeException e) {
                // Community edition has no role-based access control: GRANT ROLE is
                // rejected, but every authenticated user already has full access.
                log("note: GRANT ROLE admin failed (" + firstLine(e) + "); "
                        + "community edition gives every user full access anyway");
            }
        }
        log("credentials configured for user " + user);
    }

    private static void waitForHttp(URI http, long timeoutMs) throws Exception {
        long deadline = System.currentTimeMillis() + timeoutMs;
        Exception last = null;
        while (System.currentTimeMillis() < deadline) {
            try {
                HttpURLConnection c = (HttpURLConnection) http.toURL().openConnection();
                c.setConnectTimeout(2000);
                c.setReadTimeout(5000);
                c.setRequestProperty("Accept", "application/json");
                int code = c.getResponseCode();
                c.disconnect();
                if (code == 200) return;
                last = new IOException("HTTP " + code + " from " + http);
            } catch (IOException e) {
                last = e;
            }
            Thread.sleep(200);
        }
        throw new IOException("HTTP endpoint " + http + " did not answer in time", last);
    }

    private static String stripSlash(URI u) {
        String s = u.toString();
        return s.endsWith("/") ? s.substring(0, s.length() - 1) : s;
    }

    private static boolean saysAnywhere(Throwable e, String text) {
        for (Throwable t = e; t != null; t = t.getCause())
            if (String.valueOf(t.getMessage()).contains(text)) return true;
        return false;
    }

    private static String firstLine(Throwable e) {
        String m = String.valueOf(e.getMessage());
        int nl = m.indexOf('\n');
        return nl < 0 ? m : m.substring(0, nl);
    }

    private static void closeQuietly(Neo4j neo4j) {
        try {
            neo4j.close();
        } catch (Throwable t) {
            log("error while closing Neo4j: " + t);
        }
    }
}
