package ui

import (
	"net/url"
	"strconv"
)

// perPage bounds the rows of a list page: a thousand repositories render
// as ten small pages, not one large one.
const perPage = 100

// pager is one page of a list of total items.
type pager struct {
	Page, Pages, Total int
	Prev, Next         string // URLs, "" at the ends
}

// pageOf reads ?page= (1-based) and cuts [from, to) out of total items;
// link makes a page's URL.
func pageOf(q url.Values, total int, link func(page int) string) (from, to int, p pager) {
	p.Total = total
	p.Pages = max(1, (total+perPage-1)/perPage)
	p.Page, _ = strconv.Atoi(q.Get("page"))
	p.Page = min(max(p.Page, 1), p.Pages)
	from = (p.Page - 1) * perPage
	to = min(from+perPage, total)
	if p.Page > 1 {
		p.Prev = link(p.Page - 1)
	}
	if p.Page < p.Pages {
		p.Next = link(p.Page + 1)
	}
	return from, to, p
}
