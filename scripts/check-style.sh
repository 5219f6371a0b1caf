#!/usr/bin/env bash
# Style and hygiene gates (style.md §12): formatting with the pinned clang-format, whitespace, and
# calls that are banned in all of src/ or, because they block the event loop, in src/daemon/.
# An exception needs a same-line /* allow-banned: reason */ or /* allow-blocking: reason */ comment.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0

mapfile -t c_files < <(git ls-files '*.c' '*.h' 2>/dev/null || find src include tests -name '*.[ch]')
if ((${#c_files[@]})); then
    if ! clang-format --dry-run --Werror "${c_files[@]}" 2>/tmp/pgha-clang-format.log; then
        echo "check-style: files not formatted (run: clang-format -i \$(git ls-files '*.[ch]')):" >&2
        grep -oE '^[^:]+\.[ch]' /tmp/pgha-clang-format.log | sort -u >&2
        status=1
    fi
fi

if git rev-parse --git-dir >/dev/null 2>&1 && git rev-parse HEAD >/dev/null 2>&1; then
    git diff --check HEAD -- . || status=1
fi

banned_everywhere='\b(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|atoll|gets|system|popen)\s*\('
banned_daemon='\b(sleep|usleep|nanosleep|PQexec|PQexecParams|PQconnectdb|PQconnectdbParams|PQping|curl_easy_perform|getaddrinfo|gethostbyname)\s*\('
hits=$(grep -rnE "$banned_everywhere" src | grep -v 'allow-banned' || true)
if [ -n "$hits" ]; then
    echo "check-style: banned calls in src/:" >&2
    echo "$hits" >&2
    status=1
fi
hits=$(grep -rnE "$banned_daemon" src/daemon | grep -v -e 'allow-blocking' -e 'allow-banned' || true)
if [ -n "$hits" ]; then
    echo "check-style: blocking calls in src/daemon/ (the event loop must never block):" >&2
    echo "$hits" >&2
    status=1
fi
exit $status
