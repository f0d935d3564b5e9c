# The search page in headless Chromium: it loads, searches (query from the
# URL), filters by category and pages; the search modes, filters, highlights,
# LaTeX rendered by the embedded KaTeX, "similar papers", dark mode;
# screenshots (light and dark) are kept under build/.
. tests/e2e-lib.sh
command -v chromium >/dev/null || fail "chromium is not installed (scripts/setup --test installs it)"
sample_records 300 "$TMP/sample.jsonl"
expect_status 0 "$SEMDEX" ingest --data "$TMP/db" --quiet "$TMP/sample.jsonl"
start_server "$TMP/db"

browse() { # browse URL OUT.html [screenshot.png]
  local shot=()
  [ $# -ge 3 ] && shot=(--screenshot="$3" --window-size=1200,1400)
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --user-data-dir="$TMP/chrome" --virtual-time-budget=10000 "${shot[@]}" --dump-dom "$1" \
    > "$2" 2>"$TMP/chrome.log" || fail "chromium failed: $(tail -5 "$TMP/chrome.log")"
}

# The page loads with its search form.
browse "$BASE/" "$TMP/empty.html"
grep -q 'id="search-form"' "$TMP/empty.html" || fail "no search form"

# Search: results with scores, arXiv links and the status line.
browse "$BASE/?q=neural+networks+for+speech" "$TMP/search.html"
n=$(grep -o 'data-paper-id="[^"]*"' "$TMP/search.html" | wc -l)
[ "$n" = 10 ] || fail "expected 10 results on the page, found $n"
grep -q 'href="https://arxiv.org/abs/' "$TMP/search.html" || fail "no arXiv links"
grep -q 'class="score">0\.[0-9]\{3\}<' "$TMP/search.html" || fail "no scores"
grep -q 'Results 1–10 in' "$TMP/search.html" || fail "no status line"

# Filter: every result carries the category.
browse "$BASE/?q=neural+networks&cat=cs.CV" "$TMP/filter.html"
ids=$(grep -o 'data-paper-id="[^"]*"' "$TMP/filter.html" | cut -d'"' -f2)
[ -n "$ids" ] || fail "no filtered results"
for id in $ids; do
  http GET "/papers/$id"; expect_http 200 '.categories | index("cs.CV") != null'
done

# Paging: page 2 starts at result 11 and differs from page 1.
browse "$BASE/?q=neural+networks+for+speech&offset=10" "$TMP/page2.html" build/web-page.png
grep -q 'page 2' "$TMP/page2.html" || fail "no page 2 marker"
grep -q 'Results 11–20' "$TMP/page2.html" || fail "page 2 status"
first1=$(grep -o 'data-paper-id="[^"]*"' "$TMP/search.html" | head -1)
first2=$(grep -o 'data-paper-id="[^"]*"' "$TMP/page2.html" | head -1)
[ "$first1" != "$first2" ] || fail "page 2 shows page 1"
[ -s build/web-page.png ] || fail "no screenshot"

# Any k from 1 to 100 in the URL (k=5 once gave "page NaN"); anything else
# falls back to 10.
browse "$BASE/?q=neural+networks+for+speech&k=5&offset=5" "$TMP/k5.html"
n=$(grep -o 'data-paper-id="[^"]*"' "$TMP/k5.html" | wc -l)
[ "$n" = 5 ] || fail "k=5 showed $n results"
grep -q 'page 2' "$TMP/k5.html" || fail "k=5, offset=5 is not page 2: $(grep -o 'id="page">[^<]*' "$TMP/k5.html")"
grep -q 'Results 6–10' "$TMP/k5.html" || fail "k=5 status"
grep -q '<option>5</option>' "$TMP/k5.html" || fail "k=5 not added to the menu"
grep -Eq "page NaN|NaN–|–NaN" "$TMP/k5.html" && fail "NaN in the pager or status"
for k in abc 0 1000 -3 2.5; do
  browse "$BASE/?q=neural+networks+for+speech&k=$k" "$TMP/kbad.html"
  n=$(grep -o 'data-paper-id="[^"]*"' "$TMP/kbad.html" | wc -l)
  [ "$n" = 10 ] || fail "k=$k showed $n results, expected the default 10"
  grep -Eq "page NaN|NaN–|–NaN" "$TMP/kbad.html" && fail "NaN in the pager or status for k=$k"
done
# No results: the pager is hidden (its display:flex once overrode hidden).
grep -q 'nav#pager\[hidden\] { display: none; }' "$TMP/k5.html" || fail "no rule hides the pager"
browse "$BASE/?q=neural+networks&cat=no-such.cat" "$TMP/none.html"
grep -q 'No results\.' "$TMP/none.html" || fail "no 'No results.' status"
grep -q '<nav id="pager" hidden' "$TMP/none.html" || fail "pager shown with no results"
# Its static files: KaTeX from the binary, cacheable; a favicon in the page.
http GET /assets/katex/katex.min.css
[ "$STATUS" = 200 ] || fail "katex.min.css: $STATUS"
grep -q 'KaTeX_Main' "$TMP/body" || fail "katex.min.css is not KaTeX's"
curl -s -D "$TMP/h" -o /dev/null "$BASE/assets/katex/fonts/KaTeX_Main-Regular.woff2"
grep -qi '^Content-Type: font/woff2' "$TMP/h" || fail "font type: $(cat "$TMP/h")"
grep -qi '^Cache-Control: public' "$TMP/h" || fail "fonts not cacheable: $(cat "$TMP/h")"
http GET /assets/katex/nope.js; expect_http 404 '.error.code == "not_found"'
grep -q '<link rel="icon" href="data:image/svg+xml' "$TMP/empty.html" || fail "no favicon"

# Modes from the URL: keyword search marks the query's terms; hybrid too.
browse "$BASE/?q=neural+networks&mode=keyword" "$TMP/kw.html" build/web-page-keyword.png
n=$(grep -o 'data-paper-id="[^"]*"' "$TMP/kw.html" | wc -l)
[ "$n" = 10 ] || fail "keyword mode showed $n results"
grep -q '<option value="keyword" selected\|id="mode"' "$TMP/kw.html" || fail "no mode switch"
marks=$(grep -o '<mark>[^<]*</mark>' "$TMP/kw.html" | sed 's/<[^>]*>//g' | tr 'A-Z' 'a-z' | sort -u | paste -sd' ')
[ "$marks" = "networks neural" ] || [ "$marks" = "network networks neural" ] || [ "$marks" = "neural networks" ] ||
  fail "highlighted terms: '$marks'"
browse "$BASE/?q=neural+networks&mode=hybrid&k=5" "$TMP/hy.html"
[ "$(grep -o 'data-paper-id="[^"]*"' "$TMP/hy.html" | wc -l)" = 5 ] || fail "hybrid mode"
grep -q '<mark>' "$TMP/hy.html" || fail "no highlights in hybrid mode"

# Authors from the URL (a name of the first result above): newest first, no scores.
name=$(curl -s "$BASE/search?q=neural+networks&mode=keyword&top_k=1" | jq -r '.results[0].authors | split(",")[0] | split(" and ")[0] | gsub("^\\s+|\\s+$"; "")')
enc=$(jq -rn --arg n "$name" '$n | @uri')
browse "$BASE/?q=$enc&mode=authors" "$TMP/au.html"
grep -q 'data-paper-id=' "$TMP/au.html" || fail "authors mode found nothing for $name"
grep -q 'class="score"' "$TMP/au.html" && fail "authors mode shows scores"
grep -o '<div class="meta">[^·]*· [0-9-]*' "$TMP/au.html" | grep -o '[0-9]\{4\}-[0-9-]*$' > "$TMP/dates" || true
sort -r "$TMP/dates" | cmp -s - "$TMP/dates" || fail "authors mode is not newest first: $(paste -sd' ' "$TMP/dates")"

# Date range and sort from the URL: every date inside, newest first.
browse "$BASE/?q=neural+networks&from=2000-01-01&to=2030-12-31&sort=date" "$TMP/dated.html"
grep -o '· [0-9]\{4\}-[0-9][0-9]-[0-9][0-9]' "$TMP/dated.html" | cut -c3- > "$TMP/dates"
[ -s "$TMP/dates" ] || fail "no dated results"
sort -r "$TMP/dates" | cmp -s - "$TMP/dates" || fail "sort=date is not newest first"
grep -q 'id="date_from"[^>]*value="2000-01-01"\|value="2000-01-01"[^>]*id="date_from"' "$TMP/dated.html" ||
  grep -q 'from=2000-01-01' "$TMP/dated.html" || true

# "similar papers" links, and the similar view from the URL.
grep -q 'class="similar" href="?similar=' "$TMP/search.html" || fail "no similar-papers links"
first=$(grep -o 'data-paper-id="[^"]*"' "$TMP/search.html" | head -1 | cut -d'"' -f2)
browse "$BASE/?similar=$(jq -rn --arg n "$first" '$n | @uri')&k=5" "$TMP/sim.html"
n=$(grep -o 'data-paper-id="[^"]*"' "$TMP/sim.html" | wc -l)
[ "$n" = 5 ] || fail "similar view showed $n results"
grep -q "data-paper-id=\"$first\"" "$TMP/sim.html" && fail "the similar view lists the paper itself"
grep -q 'Papers similar to' "$TMP/sim.html" || fail "no similar-papers note"

# LaTeX in titles and abstracts is rendered by KaTeX (no network needed).
post_json /papers '{"papers": [{"id": "tex.1", "title": "Bounds on $\\mathcal{O}(n^2)$ flows in $T\\bar{T}$ deformed theories", "abstract": "We show $\\alpha \\le \\beta$ for all flows.", "categories": "hep-th"}]}'
[ "$STATUS" = 200 ] || fail "upsert of a LaTeX paper: $(cat "$TMP/body")"
browse "$BASE/?q=deformed+flows+bounds&mode=keyword&k=3" "$TMP/tex.html" build/web-page-latex.png
grep -q 'data-paper-id="tex.1"' "$TMP/tex.html" || fail "the LaTeX paper was not found"
grep -q 'class="katex"' "$TMP/tex.html" || fail "LaTeX not rendered by KaTeX"
grep -q '<mark>flows</mark>' "$TMP/tex.html" || fail "terms outside the LaTeX not highlighted"

# Dark mode (prefers-color-scheme) and a screenshot of each scheme.
grep -q 'data-scheme="light"' "$TMP/search.html" || fail "light scheme not detected"
timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --force-dark-mode \
  --user-data-dir="$TMP/chrome-dark" --virtual-time-budget=10000 --screenshot=build/web-page-dark.png \
  --window-size=1200,1400 "$BASE/?q=deformed+flows+bounds&mode=hybrid" 2>"$TMP/chrome.log" >/dev/null ||
  fail "chromium (dark) failed: $(tail -5 "$TMP/chrome.log")"
timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --force-dark-mode \
  --user-data-dir="$TMP/chrome-dark" --virtual-time-budget=10000 --dump-dom "$BASE/?q=deformed+flows&mode=hybrid" \
  > "$TMP/dark.html" 2>"$TMP/chrome.log" || fail "chromium (dark) failed"
grep -q 'data-scheme="dark"' "$TMP/dark.html" || fail "dark scheme not applied"
grep -q 'prefers-color-scheme: dark' "$TMP/dark.html" || fail "no dark style rules"
[ -s build/web-page-dark.png ] || fail "no dark screenshot"
python3 - build/web-page.png build/web-page-dark.png <<'PY' || fail "the dark screenshot is not dark"
import sys, zlib, struct
def mean_gray(path):  # mean of R, G, B over every pixel of an 8-bit RGB(A) PNG
    data = open(path, "rb").read()
    w, h, depth, ctype = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and ctype in (2, 6), (depth, ctype)
    idat, i = b"", 8
    while i < len(data):
        n = struct.unpack(">I", data[i:i + 4])[0]
        if data[i + 4:i + 8] == b"IDAT": idat += data[i + 8:i + 8 + n]
        i += 12 + n
    raw, bpp = zlib.decompress(idat), {2: 3, 6: 4}[ctype]
    stride, prev, total = w * bpp, bytearray(w * bpp), 0
    for r in range(h):
        ft, line = raw[r * (stride + 1)], bytearray(raw[r * (stride + 1) + 1:(r + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if ft == 1: line[x] = (line[x] + a) & 255
            elif ft == 2: line[x] = (line[x] + b) & 255
            elif ft == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif ft == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if r % 20 == 0:
            total += sum(line[x] for x in range(stride) if x % bpp < 3) / (w * 3)
        prev = line
    return total / len(range(0, h, 20))
light, dark = mean_gray(sys.argv[1]), mean_gray(sys.argv[2])
assert light > 180 and dark < 80, (light, dark)
PY
stop_server
