#!/usr/bin/env bash
# Build a small mixed corpus for RAG evaluation: PDFs rendered from man pages
# plus the Debian/Ubuntu release tables from distro-info-data (CSV).
#
# Usage: eval/make_mixed_corpus.sh OUTDIR
#
# Idempotent: installs only missing Debian packages, and rebuilds a file only
# if it is missing or empty. Output is deterministic for a given set of
# installed package versions (fixed SOURCE_DATE_EPOCH, no timestamps in PDFs).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
out=$1
mkdir -p "$out"

# Man pages to render (page name -> Debian package that ships it).
pages=(bash rsync ssh ssh_config tar crontab find grep)
declare -A page_pkg=(
    [bash]=bash
    [rsync]=rsync
    [ssh]=openssh-client
    [ssh_config]=openssh-client
    [tar]=tar
    [crontab]=cron
    [find]=findutils
    [grep]=grep
)
csvs=(debian.csv ubuntu.csv)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

apt_install() {
    # Retry while another apt/dpkg run holds the lock.
    local tries=0
    until $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; do
        tries=$((tries + 1))
        if [ $tries -ge 20 ]; then
            echo "apt-get install $* failed" >&2
            return 1
        fi
        echo "apt-get install failed (lock held?); retrying in 30 s" >&2
        sleep 30
    done
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

need=()
for pkg in groff ghostscript man-db distro-info-data; do
    installed "$pkg" || need+=("$pkg")
done
for p in "${pages[@]}"; do
    pkg=${page_pkg[$p]}
    if ! man -w "$p" >/dev/null 2>&1; then
        # The package may be installed with its docs excluded; reinstall then.
        need+=("$pkg")
    fi
done
if [ ${#need[@]} -gt 0 ]; then
    # Deduplicate.
    mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
    echo "installing: ${need[*]}" >&2
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        $SUDO apt-get update
    fi
    if ! apt_install "${need[@]}"; then
        $SUDO apt-get update
        apt_install "${need[@]}"
    fi
    for p in "${pages[@]}"; do
        if ! man -w "$p" >/dev/null 2>&1; then
            $SUDO apt-get install -y --reinstall "${page_pkg[$p]}"
        fi
    done
fi

# Deterministic rendering: fixed dates, C locale, fixed width.
export SOURCE_DATE_EPOCH=1700000000
export LC_ALL=C.UTF-8 LANG=C.UTF-8 MANWIDTH=80 MAN_KEEP_FORMATTING=
unset MANPAGER PAGER

for p in "${pages[@]}"; do
    pdf="$out/$p.pdf"
    if [ -s "$pdf" ]; then
        continue
    fi
    tmp="$out/.$p.pdf.tmp"
    # Drop groff's wall-clock %%CreationDate and ghostscript's time-based /ID;
    # ghostscript takes the document dates from SOURCE_DATE_EPOCH.
    man -t "$p" | sed '/^%%CreationDate:/d' | ps2pdf -dOmitID=true - "$tmp"
    mv -f "$tmp" "$pdf"
    echo "made $pdf" >&2
done

for c in "${csvs[@]}"; do
    src=/usr/share/distro-info/$c
    if ! cmp -s "$src" "$out/$c"; then
        cp -f "$src" "$out/$c"
        echo "copied $out/$c" >&2
    fi
done

ls -l "$out" >&2
