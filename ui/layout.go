package ui

import (
	"fmt"
	"slices"
)

// Layered drawing of a DAG (Sugiyama, simplified): each node's layer is
// its longest path from a source, so every edge goes left to right; nodes
// in a layer are ordered by the mean position of their predecessors,
// which keeps edges from crossing in chains and trees. Sizes in pixels.
const (
	nodeWidth  = 220
	nodeHeight = 54
	layerGap   = 90
	rowGap     = 18
	margin     = 10
)

// dagNode is a node to place; Edges index its successors.
type dagNode struct {
	Edges []int
}

// placed is where layout put things.
type placed struct {
	X, Y          []int // each node's top left corner
	Width, Height int   // of the whole drawing
	Paths         []edgePath
}

type edgePath struct {
	From, To int
	D        string // SVG path data
}

// layout places nodes, which must form a DAG (build rules do: the graph
// refuses cycles).
func layout(nodes []dagNode) placed {
	n := len(nodes)
	preds := make([][]int, n)
	indeg := make([]int, n)
	for i, nd := range nodes {
		for _, j := range nd.Edges {
			preds[j] = append(preds[j], i)
			indeg[j]++
		}
	}
	// Longest path layering in topological order (Kahn).
	layer := make([]int, n)
	var order, ready []int
	for i := range n {
		if indeg[i] == 0 {
			ready = append(ready, i)
		}
	}
	for len(ready) > 0 {
		i := ready[0]
		ready = ready[1:]
		order = append(order, i)
		for _, j := range nodes[i].Edges {
			layer[j] = max(layer[j], layer[i]+1)
			if indeg[j]--; indeg[j] == 0 {
				ready = append(ready, j)
			}
		}
	}
	layers := 0
	for _, l := range layer {
		layers = max(layers, l+1)
	}
	rows := make([][]int, layers)
	for _, i := range order {
		rows[layer[i]] = append(rows[layer[i]], i)
	}
	pos := make([]float64, n)
	for _, row := range rows {
		for k, i := range row {
			pos[i] = float64(k)
		}
	}
	for l := 1; l < layers; l++ {
		for _, i := range rows[l] {
			if len(preds[i]) == 0 {
				continue
			}
			sum := 0.0
			for _, p := range preds[i] {
				sum += pos[p]
			}
			pos[i] = sum / float64(len(preds[i]))
		}
		slices.SortStableFunc(rows[l], func(a, b int) int {
			switch {
			case pos[a] < pos[b]:
				return -1
			case pos[a] > pos[b]:
				return 1
			}
			return 0
		})
		for k, i := range rows[l] {
			pos[i] = float64(k)
		}
	}
	p := placed{X: make([]int, n), Y: make([]int, n)}
	tallest := 0
	for l, row := range rows {
		tallest = max(tallest, len(row))
		for k, i := range row {
			p.X[i] = margin + l*(nodeWidth+layerGap)
			p.Y[i] = margin + k*(nodeHeight+rowGap)
		}
	}
	p.Width = 2*margin + max(1, layers)*(nodeWidth+layerGap) - layerGap
	p.Height = 2*margin + max(1, tallest)*(nodeHeight+rowGap) - rowGap
	for i, nd := range nodes {
		for _, j := range nd.Edges {
			x1, y1 := p.X[i]+nodeWidth, p.Y[i]+nodeHeight/2
			x2, y2 := p.X[j], p.Y[j]+nodeHeight/2
			mid := (x1 + x2) / 2
			p.Paths = append(p.Paths, edgePath{From: i, To: j,
				D: fmt.Sprintf("M%d %d C%d %d %d %d %d %d", x1, y1, mid, y1, mid, y2, x2-6, y2)})
		}
	}
	return p
}
