#!/usr/bin/env bash
# make dist: release artifacts in $DIST for each of $PLATFORMS —
#   storaged-client-<v>.tgz               npm: the client, listing every platform package as optional
#   storaged-daemon-<os>-<cpu>-<v>.tgz    npm: the prebuilt daemon for one platform (os/cpu fields)
#   storaged-<v>-<os>-<arch>.tar.gz       operators: binary, systemd units, env example, README
#   storaged_<v>_<arch>.deb               operators (linux): built with nfpm
#   SHA256SUMS
# Environment: VERSION, COMMIT, NFPM (the nfpm binary), GO, DIST, PLATFORMS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

: "${VERSION:?}" "${COMMIT:?}" "${NFPM:?}"
GO=${GO:-go}
DIST=${DIST:-$ROOT/dist}
PLATFORMS=${PLATFORMS:-linux/amd64 linux/arm64}
LDFLAGS="-s -w -X main.Version=$VERSION -X main.Commit=$COMMIT"

log() { echo "dist: $*"; }

# npm's names for Go's platforms (process.platform / process.arch).
npm_cpu() { case $1 in amd64) echo x64 ;; arm64) echo arm64 ;; *) echo "dist: no npm cpu for $1" >&2; exit 1 ;; esac; }

client_version=$(node -p 'require("./clients/node/package.json").version')
if [ "$client_version" != "$VERSION" ]; then
	echo "dist: clients/node/package.json is $client_version but VERSION is $VERSION; make them equal (and CLIENT_VERSION in src/version.ts)" >&2
	exit 1
fi

rm -rf "$DIST"
mkdir -p "$DIST/stage"

platform_pkgs=()
for p in $PLATFORMS; do
	os=${p%/*} arch=${p#*/}
	platform_pkgs+=("@storaged/daemon-$os-$(npm_cpu "$arch")")
done

log "client $VERSION"
(
	cd clients/node
	[ -d node_modules ] || npm ci --no-audit --no-fund >/dev/null
	npm run -s build
)
stage=$DIST/stage/client
mkdir -p "$stage"
cp -R clients/node/dist "$stage/dist"
cp README.md "$stage/README.md"
# The published manifest: the repository's, less what only building needs,
# plus the platform packages of this very version as optional dependencies
# (npm installs the one whose os/cpu match and skips the others).
PKGS="${platform_pkgs[*]}" node -e '
	const fs = require("fs");
	const m = JSON.parse(fs.readFileSync("clients/node/package.json", "utf8"));
	delete m.devDependencies; delete m.scripts; delete m.overrides;
	m.files = ["dist"];
	m.optionalDependencies = Object.fromEntries(process.env.PKGS.split(" ").map((p) => [p, m.version]));
	fs.writeFileSync(process.argv[1], JSON.stringify(m, null, 2) + "\n");
' "$stage/package.json"
npm pack --silent --pack-destination "$DIST" "$stage" >/dev/null

for p in $PLATFORMS; do
	os=${p%/*} arch=${p#*/} cpu=$(npm_cpu "$arch")
	log "$os/$arch"
	bin=$DIST/stage/build-$os-$arch/storaged
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch "$GO" build -trimpath -ldflags "$LDFLAGS" -o "$bin" ./cmd/storaged

	# npm: @storaged/daemon-<os>-<cpu>, the binary under bin/.
	pkg=$DIST/stage/daemon-$os-$cpu
	mkdir -p "$pkg/bin"
	cp "$bin" "$pkg/bin/storaged"
	PKG_OS=$os PKG_CPU=$cpu node -e '
		const fs = require("fs");
		const { PKG_OS: os, PKG_CPU: cpu } = process.env;
		const client = JSON.parse(fs.readFileSync("clients/node/package.json", "utf8"));
		fs.writeFileSync(process.argv[1], JSON.stringify({
			name: `@storaged/daemon-${os}-${cpu}`,
			version: client.version,
			description: `The storaged daemon prebuilt for ${os} ${cpu}; @storaged/client finds it. Install @storaged/client, not this.`,
			license: client.license,
			os: [os],
			cpu: [cpu],
			files: ["bin"],
			preferUnplugged: true,
		}, null, 2) + "\n");
	' "$pkg/package.json"
	cat >"$pkg/README.md" <<-README
	# @storaged/daemon-$os-$cpu

	The \`storaged\` binary ($VERSION, commit $COMMIT) for $os $cpu, built with
	CGO off. \`@storaged/client\` lists it as an optional dependency, so npm
	installs it on $os $cpu only, and the client runs \`bin/storaged\` from here
	for its Memory backends (after \`STORAGED_BIN\`, before \`PATH\`).
	README
	npm pack --silent --pack-destination "$DIST" "$pkg" >/dev/null

	# Tarball: what `make install` would put in place, in one directory.
	name=storaged-$VERSION-$os-$arch
	tdir=$DIST/stage/tar/$name
	mkdir -p "$tdir/systemd"
	cp "$bin" "$tdir/storaged"
	cp systemd/storaged.service systemd/storaged.socket systemd/storaged.env.example "$tdir/systemd/"
	cp README.md "$tdir/README.md"
	tar -C "$DIST/stage/tar" --owner=0 --group=0 --numeric-owner --sort=name \
		--mtime="@$(git log -1 --format=%ct 2>/dev/null || date +%s)" -czf "$DIST/$name.tar.gz" "$name"

	# .deb (linux): /usr/bin/storaged, so the units point there.
	if [ "$os" = linux ]; then
		deb=$DIST/stage/deb-$arch
		mkdir -p "$deb"
		cp "$bin" "$deb/storaged"
		sed 's|/usr/local/bin/storaged|/usr/bin/storaged|g' systemd/storaged.service >"$deb/storaged.service"
		cp systemd/storaged.socket systemd/storaged.env.example README.md "$deb/"
		cp -R packaging/deb "$deb/scripts"
		(cd "$deb" && VERSION=$VERSION DEB_ARCH=$arch \
			"$NFPM" package --config "$ROOT/packaging/nfpm.yaml" --packager deb --target "$DIST/storaged_${VERSION}_$arch.deb" >/dev/null)
	fi
done

rm -rf "$DIST/stage"
(cd "$DIST" && sha256sum -- * >SHA256SUMS)
log "done:"
ls -l "$DIST" | tail -n +2
