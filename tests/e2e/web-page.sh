# The search page in headless Chromium: it loads, searches (query from the
# URL), filters by category and pages; a screenshot is kept under build/.
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
stop_server
