// The operators' artifacts of this platform: the release tarball and the
// .deb (contents, conffiles, maintainer scripts checked with dpkg-deb), and
// the units they ship, verified with systemd-analyze at the paths they install.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { artifact, goarch, ROOT, run, VERSION } from "./helpers.mjs";

const work = mkdtempSync(join(tmpdir(), "storaged-dist-"));
after(() => rmSync(work, { recursive: true, force: true }));

const versionLine = new RegExp(`^storaged ${VERSION.replace(/\./g, "\\.")} \\(commit [0-9a-f]{7,}(-dirty)?, go`);

/** systemd-analyze verify of a service and socket whose ExecStart is bin; problems with our units only. */
function verifyUnits(service, socket, installedPath, bin) {
  const dir = mkdtempSync(join(work, "units-"));
  writeFileSync(join(dir, "storaged.service"), readFileSync(service, "utf8").replaceAll(installedPath, bin));
  writeFileSync(join(dir, "storaged.socket"), readFileSync(socket, "utf8"));
  let out = "";
  try {
    out = execFileSync("systemd-analyze", ["verify", join(dir, "storaged.service"), join(dir, "storaged.socket")], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (err) {
    if (err.code === "ENOENT") throw new Error("systemd-analyze not found: install systemd (apt-get install systemd)");
    out = `${err.stdout}${err.stderr}\nexit ${err.status}`;
    // Lines about other units (the host's own) are not ours to fix.
    const ours = out.split("\n").filter((l) => l.includes("storaged.") || l.startsWith("exit"));
    assert.fail(`systemd-analyze verify:\n${ours.join("\n")}`);
  }
  return out;
}

describe(`release tarball linux-${goarch}`, { skip: process.platform !== "linux" && "linux only" }, () => {
  const name = `storaged-${VERSION}-linux-${goarch}`;
  const tarball = artifact(`${name}.tar.gz`);

  it("holds the binary, the units, the env example and the README, owned by root", () => {
    const listing = run("tar", ["-tvzf", tarball]).trim().split("\n");
    const files = listing.map((l) => l.split(/\s+/).pop()).filter((f) => !f.endsWith("/")).sort();
    assert.deepEqual(files, [
      `${name}/README.md`,
      `${name}/storaged`,
      `${name}/systemd/storaged.env.example`,
      `${name}/systemd/storaged.service`,
      `${name}/systemd/storaged.socket`,
    ]);
    for (const l of listing) assert.match(l, /^\S+ 0\/0 /, l);
    assert.match(listing.find((l) => l.endsWith(`${name}/storaged`)), /^-rwxr-xr-x/);
  });

  it("its binary runs and says its version; its units verify", () => {
    run("tar", ["-xzf", tarball, "-C", work]);
    const dir = join(work, name);
    assert.match(run(join(dir, "storaged"), ["version"]), versionLine);
    verifyUnits(join(dir, "systemd/storaged.service"), join(dir, "systemd/storaged.socket"), "/usr/local/bin/storaged", join(dir, "storaged"));
  });
});

describe(`.deb ${goarch}`, { skip: process.platform !== "linux" && "linux only" }, () => {
  const deb = artifact(`storaged_${VERSION}_${goarch}.deb`);
  const control = join(work, "DEBIAN");
  const root = join(work, "root");

  it("control: name, version, architecture, dependencies", () => {
    const info = run("dpkg-deb", ["--field", deb, "Package", "Version", "Architecture", "Depends"]);
    assert.match(info, /^Package: storaged$/m);
    assert.match(info, new RegExp(`^Version: ${VERSION.replace(/\./g, "\\.")}$`, "m"));
    assert.match(info, new RegExp(`^Architecture: ${goarch}$`, "m"));
    assert.match(info, /^Depends: passwd$/m);
  });

  it("contents: the binary, the units, the config file with their modes", () => {
    const lines = run("dpkg-deb", ["--contents", deb]).trim().split("\n");
    const entry = (path) => {
      const l = lines.find((x) => x.split(/\s+/).pop() === `.${path}`);
      assert.ok(l, `${path} in\n${lines.join("\n")}`);
      return l;
    };
    assert.match(entry("/usr/bin/storaged"), /^-rwxr-xr-x root\/root /);
    assert.match(entry("/usr/lib/systemd/system/storaged.service"), /^-rw-r--r-- root\/root /);
    assert.match(entry("/usr/lib/systemd/system/storaged.socket"), /^-rw-r--r-- root\/root /);
    assert.match(entry("/etc/storaged/storaged.env"), /^-rw-r----- root\/root /);
    assert.match(entry("/usr/share/doc/storaged/README.md"), /^-rw-r--r-- /);
  });

  it("/etc/storaged/storaged.env is a conffile; the maintainer scripts create the user and group and are valid sh", () => {
    run("dpkg-deb", ["--control", deb, control]);
    assert.deepEqual(readFileSync(join(control, "conffiles"), "utf8").trim().split("\n"), ["/etc/storaged/storaged.env"]);
    assert.match(readFileSync(join(control, "prerm"), "utf8"), /systemctl stop storaged.socket storaged.service/);
    for (const script of ["postinst", "prerm", "postrm"]) {
      run("sh", ["-n", join(control, script)]);
    }
  });

  // postinst run for real against stand-ins for the commands it calls.
  function postinst(args, { userExists }) {
    const dir = mkdtempSync(join(work, "postinst-"));
    const stubs = join(dir, "stubs");
    const log = join(dir, "calls");
    mkdirSync(join(dir, "root/etc/storaged"), { recursive: true });
    writeFileSync(join(dir, "root/etc/storaged/storaged.env"), "");
    mkdirSync(stubs);
    for (const cmd of ["groupadd", "useradd", "chgrp", "chmod", "systemctl"]) {
      writeFileSync(join(stubs, cmd), `#!/bin/sh\necho "${cmd} $*" >>${log}\n`, { mode: 0o755 });
    }
    writeFileSync(join(stubs, "getent"), `#!/bin/sh\nexit ${userExists ? 0 : 2}\n`, { mode: 0o755 });
    run("sh", [join(control, "postinst"), ...args], {
      env: { PATH: `${stubs}:/usr/bin:/bin`, DPKG_ROOT: join(dir, "root") },
    });
    return { calls: existsSync(log) ? readFileSync(log, "utf8").trim().split("\n") : [], root: join(dir, "root") };
  }

  it("postinst on a fresh install creates the storaged group and system user and gives it the config file", () => {
    const { calls, root: r } = postinst(["configure", ""], { userExists: false });
    const env = join(r, "etc/storaged/storaged.env");
    const ours = calls.filter((c) => !c.startsWith("systemctl"));
    assert.deepEqual(ours, [
      "groupadd --system storaged",
      "useradd --system --gid storaged --home-dir /var/lib/storaged --no-create-home --shell /usr/sbin/nologin --comment storaged storage sidecar storaged",
      `chgrp storaged ${env}`,
      `chmod 0640 ${env}`,
    ]);
  });

  it("postinst on an upgrade with the user in place leaves users and the config file alone", () => {
    const { calls } = postinst(["configure", "0.0.9"], { userExists: true });
    assert.deepEqual(calls.filter((c) => !c.startsWith("systemctl")), []);
  });

  it("installed files: the binary runs, the config is the env example, the units point at /usr/bin and verify", () => {
    run("dpkg-deb", ["--extract", deb, root]);
    const bin = join(root, "usr/bin/storaged");
    assert.match(run(bin, ["version"]), versionLine);
    assert.equal(readFileSync(join(root, "etc/storaged/storaged.env"), "utf8"), readFileSync(join(ROOT, "systemd/storaged.env.example"), "utf8"));
    const service = join(root, "usr/lib/systemd/system/storaged.service");
    assert.match(readFileSync(service, "utf8"), /^ExecStart=\/usr\/bin\/storaged serve$/m);
    verifyUnits(service, join(root, "usr/lib/systemd/system/storaged.socket"), "/usr/bin/storaged", bin);
  });
});
