// Interpreter cases of the conv family (convolutions, pooling and their fused forms): hand-computed values.
#include "runtime/interpreter_cases.h"

namespace shoal {
namespace {

using namespace shoal::test;

SHOAL_INTERPRETER_CASES(Conv2d, OpKind::Conv2d) {
  {
    const std::vector<double> cross = {1, 0, 1, 0, 1, 0, 1, 0, 1};
    {
      // The design's example: X = 5x5 ramp 1..25, K = [[1,0,1],[0,1,0],[1,0,1]], valid.
      // Y[0,0] = 1+3+7+11+13 = 35, and each step right adds 5, each step down 25.
      CaseBuilder b("design example, no bias", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 5, 5}, ramp(25)), b.param("k", {1, 1, 3, 3}, cross)}));
      b.expect("y", {1, 1, 3, 3}, {35, 40, 45, 60, 65, 70, 85, 90, 95});
      add(b);
    }
    {
      // Two filters: the cross (+0.5) and a centre tap (-1), which picks x[oy+1][ox+1].
      CaseBuilder b("two filters with bias", dt);
      std::vector<double> w = cross;
      for (double v : {0, 0, 0, 0, 1, 0, 0, 0, 0}) w.push_back(v);
      b.output(b.op(
          kind, {b.fin("x", {1, 1, 5, 5}, ramp(25)), b.param("w", {2, 1, 3, 3}, w), b.param("bias", {2}, {0.5, -1})}));
      b.expect("y", {1, 2, 3, 3},
               {35.5, 40.5, 45.5, 60.5, 65.5, 70.5, 85.5, 90.5, 95.5, 6, 7, 8, 11, 12, 13, 16, 17, 18});
      add(b);
    }
    {
      // Stride 2, padding 1: window (oy,ox) has its top-left at (2oy-1, 2ox-1); x(r,c) = 5r+c+1,
      // 0 outside. (0,0): x(0,0)+x(1,1) = 1+7 = 8; (0,1): x(0,2)+x(1,1)+x(1,3) = 3+7+9 = 19;
      // (0,2): 5+9 = 14; (1,0): 7+11+17 = 35; (1,1): 7+9+13+17+19 = 65; (1,2): 9+15+19 = 43;
      // (2,0): 17+21 = 38; (2,1): 17+19+23 = 59; (2,2): 19+25 = 44.
      CaseBuilder b("stride 2, padding 1", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 5, 5}, ramp(25)), b.param("k", {1, 1, 3, 3}, cross)},
                    attrs({{"stride", Shape{2, 2}}, {"padding", Shape{1, 1, 1, 1}}})));
      b.expect("y", {1, 1, 3, 3}, {8, 19, 14, 35, 65, 43, 38, 59, 44});
      add(b);
    }
    {
      // Dilation 2, K = [[1,2],[3,4]]: y = x(oy,ox) + 2x(oy,ox+2) + 3x(oy+2,ox) + 4x(oy+2,ox+2)
      // = 10(5oy+ox) + (1 + 2*3 + 3*11 + 4*13) = 50oy + 10ox + 92.
      CaseBuilder b("dilation 2", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 5, 5}, ramp(25)), b.param("k", {1, 1, 2, 2}, {1, 2, 3, 4})},
                    attrs({{"dilation", Shape{2, 2}}})));
      b.expect("y", {1, 1, 3, 3}, {92, 102, 112, 142, 152, 162, 192, 202, 212});
      add(b);
    }
    {
      // Asymmetric padding [top 0, left 1, bottom 1, right 0] of [[1,2],[3,4]], 2x2 ones:
      // padded rows [0,1,2],[0,3,4],[0,0,0] -> [[0+1+0+3, 1+2+3+4], [0+3+0+0, 3+4+0+0]].
      CaseBuilder b("asymmetric padding", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 2, 2}, {1, 2, 3, 4}), b.param("k", {1, 1, 2, 2}, {1, 1, 1, 1})},
                    attrs({{"padding", Shape{0, 1, 1, 0}}})));
      b.expect("y", {1, 1, 2, 2}, {4, 10, 3, 7});
      add(b);
    }
    {
      // 1x1 over two channels and a batch of 2: y = 2*c0 - c1.
      // n0: c0 [1,2,3,4], c1 [5,6,7,8] -> [-3,-2,-1,0]; n1: c0 [0,1,0,1], c1 [1,1,1,1] -> [-1,1,-1,1].
      CaseBuilder b("pointwise, two channels, batch 2", dt);
      b.output(b.op(kind, {b.fin("x", {2, 2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 1, 1, 1, 1, 1}),
                           b.param("k", {1, 2, 1, 1}, {2, -1})}));
      b.expect("y", {2, 1, 2, 2}, {-3, -2, -1, 0, -1, 1, -1, 1});
      add(b);
    }
    {
      // Depthwise (groups = 2): channel 0 = ramp 1..16 (x(r,c) = 4r+c+1) under the cross, so
      // y = x(oy,ox) + x(oy,ox+2) + x(oy+1,ox+1) + x(oy+2,ox) + x(oy+2,ox+2) = 5·x(oy,ox) + 25;
      // channel 1 = ramp 17..32 under 3x3 ones: 9·(mean of the window) = 9·(22 + 4oy + ox).
      // Bias 0.5 and -1.
      CaseBuilder b("depthwise 3x3 on a 2-channel ramp", dt);
      std::vector<double> w = cross;
      for (int i = 0; i < 9; ++i) w.push_back(1);
      b.output(b.op(kind, {b.fin("x", {1, 2, 4, 4}, ramp(32)), b.param("w", {2, 1, 3, 3}, w), b.param("bias", {2}, {0.5, -1})},
                    attrs({{"groups", int64_t(2)}})));
      b.expect("y", {1, 2, 2, 2}, {30.5, 35.5, 50.5, 55.5, 197, 206, 233, 242});
      add(b);
    }
    {
      // Two groups of two channels, one 1x1 filter each: y0 = c0 - c1, y1 = 2·c2 + c3; no
      // filter sees the other group's channels. c0..c3 = [1,2], [3,4], [5,6], [7,8].
      CaseBuilder b("two groups, 1x1", dt);
      b.output(b.op(kind, {b.fin("x", {1, 4, 1, 2}, ramp(8)), b.param("w", {2, 2, 1, 1}, {1, -1, 2, 1})},
                    attrs({{"groups", int64_t(2)}})));
      b.expect("y", {1, 2, 1, 2}, {-2, -2, 17, 20});
      add(b);
    }
    {
      // Depthwise with a channel multiplier of 2 (groups 2, four filters): filters 0, 1 read
      // channel 0 = [1,2,3,4] (scaled 1 and -1), filters 2, 3 channel 1 = [5,6,7,8] (2 and 0.5).
      CaseBuilder b("depthwise, two filters per channel", dt);
      b.output(b.op(kind, {b.fin("x", {1, 2, 2, 2}, ramp(8)), b.param("w", {4, 1, 1, 1}, {1, -1, 2, 0.5})},
                    attrs({{"groups", int64_t(2)}})));
      b.expect("y", {1, 4, 2, 2}, {1, 2, 3, 4, -1, -2, -3, -4, 10, 12, 14, 16, 2.5, 3, 3.5, 4});
      add(b);
    }
    {
      // Depthwise 2x2, dilation 2, padding [0,1,0,0] on 3x3 ramps (c0 = 1..9, c1 = 10..18):
      // the taps are rows {0,2} and columns {ox-1, ox+1}. c0 under [[1,2],[3,4]]: ox=0 reads the
      // padding and column 1: 2·2 + 4·8 = 36; ox=1: 1·1 + 2·3 + 3·7 + 4·9 = 64. c1 under
      // [[1,0],[0,-1]]: ox=0: -x(2,1) = -17; ox=1: 10 - 18 = -8.
      CaseBuilder b("depthwise, dilation 2, asymmetric padding", dt);
      b.output(b.op(kind, {b.fin("x", {1, 2, 3, 3}, ramp(18)), b.param("w", {2, 1, 2, 2}, {1, 2, 3, 4, 1, 0, 0, -1})},
                    attrs({{"groups", int64_t(2)}, {"dilation", Shape{2, 2}}, {"padding", Shape{0, 1, 0, 0}}})));
      b.expect("y", {1, 2, 1, 2}, {36, 64, -17, -8});
      add(b);
    }
    return;
  }
}

SHOAL_INTERPRETER_CASES(Conv2dBackwardData, OpKind::Conv2dBackwardData) {
  {
    auto a = [](Shape stride, Shape pad, Shape dil, Shape in) {
      return attrs({{"stride", stride}, {"padding", pad}, {"dilation", dil}, {"input_shape", in}});
    };
    {
      // dx = Σ dy[oy,ox] · w placed at (oy,ox): dy = [[1,2],[3,4]], w = [[1,2],[3,4]]:
      // 1·w@(0,0) + 2·w@(0,1) + 3·w@(1,0) + 4·w@(1,1) = [[1,4,4],[6,20,16],[9,24,16]]
      // (centre: 1·4 + 2·3 + 3·2 + 4·1 = 20).
      CaseBuilder b("stride 1", dt);
      b.output(b.op(kind, {b.fin("dy", {1, 1, 2, 2}, {1, 2, 3, 4}), b.param("w", {1, 1, 2, 2}, {1, 2, 3, 4})},
                    a({1, 1}, {0, 0, 0, 0}, {1, 1}, {1, 1, 3, 3})));
      b.expect("y", {1, 1, 3, 3}, {1, 4, 4, 6, 20, 16, 9, 24, 16});
      add(b);
    }
    {
      // Stride 2, padding 1, 3x3 ones over a 3x3 input: window oy covers input rows {0,1}
      // (oy=0) or {1,2} (oy=1), likewise columns; dx(i,j) = Σ dy over the windows holding it.
      CaseBuilder b("stride 2, padding 1", dt);
      b.output(b.op(kind,
                    {b.fin("dy", {1, 1, 2, 2}, {1, 2, 3, 4}), b.param("w", {1, 1, 3, 3}, std::vector<double>(9, 1))},
                    a({2, 2}, {1, 1, 1, 1}, {1, 1}, {1, 1, 3, 3})));
      b.expect("y", {1, 1, 3, 3}, {1, 3, 2, 4, 10, 6, 3, 7, 4});
      add(b);
    }
    {
      // Floor mode: a 4x4 input, 3x3 kernel, stride 2 has one window; row/column 3 get 0.
      CaseBuilder b("pixels no window reads are zero", dt);
      b.output(b.op(kind, {b.fin("dy", {1, 1, 1, 1}, {5}), b.param("w", {1, 1, 3, 3}, ramp(9))},
                    a({2, 2}, {0, 0, 0, 0}, {1, 1}, {1, 1, 4, 4})));
      b.expect("y", {1, 1, 4, 4}, {5, 10, 15, 0, 20, 25, 30, 0, 35, 40, 45, 0, 0, 0, 0, 0});
      add(b);
    }
    {
      // Dilation 2: the 2x2 taps land on the corners of the 3x3 input: dy·w there.
      CaseBuilder b("dilation 2", dt);
      b.output(b.op(kind, {b.fin("dy", {1, 1, 1, 1}, {2}), b.param("w", {1, 1, 2, 2}, {1, 2, 3, 4})},
                    a({1, 1}, {0, 0, 0, 0}, {2, 2}, {1, 1, 3, 3})));
      b.expect("y", {1, 1, 3, 3}, {2, 0, 4, 0, 0, 0, 6, 0, 8});
      add(b);
    }
    {
      // Two output channels into two input channels (1x1): dx[c] = Σ_o dy[o] w[o,c].
      // w = [[1,2],[3,4]] (o,c); dy o0 = [1,0], o1 = [0,1] (a 1x2 image):
      // c0 = [1·1, 3·1] = [1,3]; c1 = [2·1, 4·1] = [2,4].
      CaseBuilder b("channels mix", dt);
      b.output(b.op(kind, {b.fin("dy", {1, 2, 1, 2}, {1, 0, 0, 1}), b.param("w", {2, 2, 1, 1}, {1, 2, 3, 4})},
                    a({1, 1}, {0, 0, 0, 0}, {1, 1}, {1, 2, 1, 2})));
      b.expect("y", {1, 2, 1, 2}, {1, 3, 2, 4});
      add(b);
    }
    {
      // Two groups, 1x1: w = [[1,-1],[2,1]] (filter 0 over c0,c1; filter 1 over c2,c3),
      // dy o0 = [1,2], o1 = [3,4]: dx c0 = dy0, c1 = -dy0, c2 = 2·dy1, c3 = dy1.
      CaseBuilder b("two groups, 1x1", dt);
      Attrs g2 = a({1, 1}, {0, 0, 0, 0}, {1, 1}, {1, 4, 1, 2});
      g2.set("groups", int64_t(2));
      b.output(b.op(kind, {b.fin("dy", {1, 2, 1, 2}, {1, 2, 3, 4}), b.param("w", {2, 2, 1, 1}, {1, -1, 2, 1})}, g2));
      b.expect("y", {1, 4, 1, 2}, {1, 2, -1, -2, 6, 8, 3, 4});
      add(b);
    }
    {
      // Depthwise 2x2: channel 0 as the stride-1 case above ([[1,4,4],[6,20,16],[9,24,16]]);
      // channel 1 spreads dy = ones through the diagonal kernel [[1,0],[0,1]]:
      // [[1,1,0],[1,2,1],[0,1,1]].
      CaseBuilder b("depthwise 2x2", dt);
      Attrs g2 = a({1, 1}, {0, 0, 0, 0}, {1, 1}, {1, 2, 3, 3});
      g2.set("groups", int64_t(2));
      b.output(b.op(kind,
                    {b.fin("dy", {1, 2, 2, 2}, {1, 2, 3, 4, 1, 1, 1, 1}),
                     b.param("w", {2, 1, 2, 2}, {1, 2, 3, 4, 1, 0, 0, 1})},
                    g2));
      b.expect("y", {1, 2, 3, 3}, {1, 4, 4, 6, 20, 16, 9, 24, 16, 1, 1, 0, 1, 2, 1, 0, 1, 1});
      add(b);
    }
    return;
  }
}

SHOAL_INTERPRETER_CASES(Conv2dBackwardWeight, OpKind::Conv2dBackwardWeight) {
  {
    auto a = [](Shape stride, Shape pad, Shape dil, Shape ws) {
      return attrs({{"stride", stride}, {"padding", pad}, {"dilation", dil}, {"weight_shape", ws}});
    };
    {
      // dw[ki,kj] = Σ dy[oy,ox] x[oy+ki, ox+kj], x = [[1,2,3],[4,5,6],[7,8,9]], dy = [[1,2],[3,4]]:
      // dw00 = 1+4+12+20 = 37, dw01 = 2+6+15+24 = 47, dw10 = 4+10+21+32 = 67, dw11 = 5+12+24+36 = 77.
      CaseBuilder b("stride 1", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 3, 3}, ramp(9)), b.fin("dy", {1, 1, 2, 2}, {1, 2, 3, 4})},
                    a({1, 1}, {0, 0, 0, 0}, {1, 1}, {1, 1, 2, 2})));
      b.expect("y", {1, 1, 2, 2}, {37, 47, 67, 77});
      add(b);
    }
    {
      // Stride 2, padding 1, x(r,c) = 3r+c+1: tap ki reads row 2oy-1+ki, so ki=0 only sees
      // oy=1 (row 1), ki=1 sees rows 0 and 2, ki=2 only oy=0 (row 1); columns alike.
      // dw00 = 4·x(1,1) = 20; dw01 = 3·x(1,0) + 4·x(1,2) = 36; dw02 = 3·x(1,1) = 15;
      // dw10 = 2·x(0,1) + 4·x(2,1) = 36; dw11 = 1+2·3+3·7+4·9 = 64; dw12 = 1·x(0,1) + 3·x(2,1) = 26;
      // dw20 = 2·x(1,1) = 10; dw21 = 1·x(1,0) + 2·x(1,2) = 16; dw22 = 1·x(1,1) = 5.
      // (Check: Σ dw = 228 = Σ dy·conv(x, ones) = 12 + 2·16 + 3·24 + 4·28.)
      CaseBuilder b("stride 2, padding 1", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 3, 3}, ramp(9)), b.fin("dy", {1, 1, 2, 2}, {1, 2, 3, 4})},
                    a({2, 2}, {1, 1, 1, 1}, {1, 1}, {1, 1, 3, 3})));
      b.expect("y", {1, 1, 3, 3}, {20, 36, 15, 36, 64, 26, 10, 16, 5});
      add(b);
    }
    {
      // Summed over the batch, two filters (1x1): dw[o] = Σ_n Σ_pixels dy[n,o] x[n].
      // x n0 = [1,2,3,4], n1 = [-1,0,1,2]; dy n0o0 = 1s, n0o1 = [1,0,0,0], n1o0 = 2s, n1o1 = [0,0,0,1]:
      // dw0 = 10 + 2·2 = 14; dw1 = 1 + 2 = 3.
      CaseBuilder b("batch of 2, two filters", dt);
      b.output(b.op(kind,
                    {b.fin("x", {2, 1, 2, 2}, {1, 2, 3, 4, -1, 0, 1, 2}),
                     b.fin("dy", {2, 2, 2, 2}, {1, 1, 1, 1, 1, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 1})},
                    a({1, 1}, {0, 0, 0, 0}, {1, 1}, {2, 1, 1, 1})));
      b.expect("y", {2, 1, 1, 1}, {14, 3});
      add(b);
    }
    {
      // Dilation 2, one output pixel: dw = dy · x at the corners = 2·[[1,3],[7,9]].
      CaseBuilder b("dilation 2", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 3, 3}, ramp(9)), b.fin("dy", {1, 1, 1, 1}, {2})},
                    a({1, 1}, {0, 0, 0, 0}, {2, 2}, {1, 1, 2, 2})));
      b.expect("y", {1, 1, 2, 2}, {2, 6, 14, 18});
      add(b);
    }
    {
      // Two groups, 1x1: x c0..c3 = [1,2], [3,4], [5,6], [7,8]; dy o0 = [1,1], o1 = [1,-1]:
      // dw[0] = [Σ dy0·c0, Σ dy0·c1] = [3, 7]; dw[1] = [Σ dy1·c2, Σ dy1·c3] = [-1, -1].
      CaseBuilder b("two groups, 1x1", dt);
      Attrs g2 = a({1, 1}, {0, 0, 0, 0}, {1, 1}, {2, 2, 1, 1});
      g2.set("groups", int64_t(2));
      b.output(b.op(kind, {b.fin("x", {1, 4, 1, 2}, ramp(8)), b.fin("dy", {1, 2, 1, 2}, {1, 1, 1, -1})}, g2));
      b.expect("y", {2, 2, 1, 1}, {3, 7, -1, -1});
      add(b);
    }
    {
      // Depthwise 2x2 over 3x3 ramps: channel 0 as the stride-1 case above ([37,47,67,77]);
      // channel 1 (10..18) with dy = ones: each tap sums a 2x2 block: 48, 52, 60, 64.
      CaseBuilder b("depthwise 2x2", dt);
      Attrs g2 = a({1, 1}, {0, 0, 0, 0}, {1, 1}, {2, 1, 2, 2});
      g2.set("groups", int64_t(2));
      b.output(b.op(kind, {b.fin("x", {1, 2, 3, 3}, ramp(18)), b.fin("dy", {1, 2, 2, 2}, {1, 2, 3, 4, 1, 1, 1, 1})},
                    g2));
      b.expect("y", {2, 1, 2, 2}, {37, 47, 67, 77, 48, 52, 60, 64});
      add(b);
    }
    return;
  }
}

SHOAL_INTERPRETER_CASES(MaxPool2d, OpKind::MaxPool2d) {
  {
    const Shape k2{2, 2};
    {
      // Windows: {4,2,4,0} -> 4, {5,3,1,1} -> 5, {7,7,6,6} -> 7, {2,9,9,9} -> 9.
      CaseBuilder b("2x2 stride 2 with ties", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 4, 4}, {4, 2, 5, 3, 4, 0, 1, 1, 7, 7, 2, 9, 6, 6, 9, 9})},
                    attrs({{"kernel", k2}, {"stride", k2}})));
      b.expect("y", {1, 1, 2, 2}, {4, 5, 7, 9});
      add(b);
    }
    {
      // Floor mode: a 5x5 ramp, the last row and column never read; maxima are the
      // bottom-right corners x(1,1) = 7, x(1,3) = 9, x(3,1) = 17, x(3,3) = 19.
      CaseBuilder b("floor mode", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 5, 5}, ramp(25))}, attrs({{"kernel", k2}, {"stride", k2}})));
      b.expect("y", {1, 1, 2, 2}, {7, 9, 17, 19});
      add(b);
    }
    {
      // Padding counts as -inf, not 0: [[-1,-2],[-3,-4]] padded by 1, 2x2 windows, stride 1.
      CaseBuilder b("padding is never the max", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 2, 2}, {-1, -2, -3, -4})},
                    attrs({{"kernel", k2}, {"stride", Shape{1, 1}}, {"padding", Shape{1, 1, 1, 1}}})));
      b.expect("y", {1, 1, 3, 3}, {-1, -1, -2, -1, -1, -2, -3, -3, -4});
      add(b);
    }
    {
      // Per channel and per image: two channels of a 2x2 image each reduce to their max.
      CaseBuilder b("channels and batch stay apart", dt);
      b.output(b.op(kind, {b.fin("x", {2, 2, 2, 2}, {1, 5, 2, 3, -1, -5, -2, -3, 0, 0, 0, 8, 9, 1, 1, 1})},
                    attrs({{"kernel", k2}, {"stride", k2}})));
      b.expect("y", {2, 2, 1, 1}, {5, -1, 8, 9});
      add(b);
    }
    {
      // Ceil mode: a 5x5 ramp, 2x2 stride 2 -> 3x3; the last row and column form partial
      // windows ({4} and {4}), so x(1,4) = 10, x(4,1) = 22, x(4,4) = 25 are kept.
      CaseBuilder b("ceil mode", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 5, 5}, ramp(25))},
                    attrs({{"kernel", k2}, {"stride", k2}, {"ceil_mode", int64_t(1)}})));
      b.expect("y", {1, 1, 3, 3}, {7, 9, 10, 17, 19, 20, 22, 24, 25});
      add(b);
    }
    {
      // 3x3 stride 2 padding 1 ceil mode over a 6x6 ramp (x = 6r+c+1): 4x4 windows (floor: 3x3)
      // whose rows are {0,1}, {1..3}, {3..5}, {5}: maxima at rows and columns 1, 3, 5, 5.
      CaseBuilder b("3x3 stride 2 padding 1 ceil mode", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 6, 6}, ramp(36))},
                    attrs({{"kernel", Shape{3, 3}},
                           {"stride", k2},
                           {"padding", Shape{1, 1, 1, 1}},
                           {"ceil_mode", int64_t(1)}})));
      b.expect("y", {1, 1, 4, 4}, {8, 10, 12, 12, 20, 22, 24, 24, 32, 34, 36, 36, 32, 34, 36, 36});
      add(b);
    }
    return;
  }
}

SHOAL_INTERPRETER_CASES(MaxPool2dGrad, OpKind::MaxPool2dGrad) {
  {
    const Shape k2{2, 2};
    {
      // dy goes to the first maximum of each window (row-major): x(0,0) (4 ties 4),
      // x(0,2) = 5, x(2,0) (7 ties 7), x(2,3) (9 ties x(3,2), x(3,3)).
      CaseBuilder b("ties go to the first max", dt);
      b.output(b.op(kind,
                    {b.fin("x", {1, 1, 4, 4}, {4, 2, 5, 3, 4, 0, 1, 1, 7, 7, 2, 9, 6, 6, 9, 9}),
                     b.fin("dy", {1, 1, 2, 2}, {10, 20, 30, 40})},
                    attrs({{"kernel", k2}, {"stride", k2}, {"padding", Shape{0, 0, 0, 0}}})));
      b.expect("y", {1, 1, 4, 4}, {10, 0, 20, 0, 0, 0, 0, 0, 30, 0, 0, 40, 0, 0, 0, 0});
      add(b);
    }
    {
      // Overlapping windows add up: x = [[1,3,2],[0,1,0]], 2x2 stride 1: both windows pick
      // x(0,1) = 3, so dx(0,1) = 5 + 7.
      CaseBuilder b("overlapping windows accumulate", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 2, 3}, {1, 3, 2, 0, 1, 0}), b.fin("dy", {1, 1, 1, 2}, {5, 7})},
                    attrs({{"kernel", k2}, {"stride", Shape{1, 1}}, {"padding", Shape{0, 0, 0, 0}}})));
      b.expect("y", {1, 1, 2, 3}, {0, 12, 0, 0, 0, 0});
      add(b);
    }
    {
      // With padding 1 (the forward case above), dy(r,c) = 3r+c+1: windows (0,0),(0,1),(1,0),(1,1)
      // pick x(0,0): 1+2+4+5 = 12; (0,2),(1,2) pick x(0,1): 3+6 = 9; (2,0),(2,1) pick x(1,0):
      // 7+8 = 15; (2,2) picks x(1,1): 9.
      CaseBuilder b("padding", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 2, 2}, {-1, -2, -3, -4}), b.fin("dy", {1, 1, 3, 3}, ramp(9))},
                    attrs({{"kernel", k2}, {"stride", Shape{1, 1}}, {"padding", Shape{1, 1, 1, 1}}})));
      b.expect("y", {1, 1, 2, 2}, {12, 9, 15, 9});
      add(b);
    }
    {
      // Ceil mode over a 5x5 ramp (the forward case above): dy = 1..9 lands on the maxima
      // x(1,1), x(1,3), x(1,4), x(3,1), x(3,3), x(3,4), x(4,1), x(4,3), x(4,4).
      CaseBuilder b("ceil mode", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 5, 5}, ramp(25)), b.fin("dy", {1, 1, 3, 3}, ramp(9))},
                    attrs({{"kernel", k2}, {"stride", k2}, {"padding", Shape{0, 0, 0, 0}}, {"ceil_mode", int64_t(1)}})));
      b.expect("y", {1, 1, 5, 5}, {0, 0, 0, 0, 0, 0, 1, 0, 2, 3, 0, 0, 0, 0, 0, 0, 4, 0, 5, 6, 0, 7, 0, 8, 9});
      add(b);
    }
    {
      // relu_mask (relu_grad fused): the windows' maxima are x(0,0) = -1, x(0,2) = 0 and
      // x(1,5) = 3; only the last is > 0, so only dy = 30 survives (unmasked: 10, 20, 30).
      CaseBuilder b("relu mask", dt);
      b.output(b.op(kind,
                    {b.fin("x", {1, 1, 2, 6}, {-1, -3, 0, -2, 2, 0, -2, -5, -1, -3, 1, 3}),
                     b.fin("dy", {1, 1, 1, 3}, {10, 20, 30})},
                    attrs({{"kernel", k2}, {"stride", k2}, {"padding", Shape{0, 0, 0, 0}}, {"relu_mask", int64_t(1)}})));
      b.expect("y", {1, 1, 2, 6}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 30});
      add(b);
    }
    return;
  }
}

SHOAL_INTERPRETER_CASES(AvgPool2d, OpKind::AvgPool2d) {
  {
    const Shape k2{2, 2};
    {
      // 4x4 ramp: (1+2+5+6)/4 = 3.5, (3+4+7+8)/4 = 5.5, (9+10+13+14)/4 = 11.5, (11+12+15+16)/4 = 13.5.
      CaseBuilder b("2x2 stride 2", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 4, 4}, ramp(16))}, attrs({{"kernel", k2}, {"stride", k2}})));
      b.expect("y", {1, 1, 2, 2}, {3.5, 5.5, 11.5, 13.5});
      add(b);
    }
    {
      // Padding counts in the divisor (always 4): [[1,2],[3,4]] padded by 1, stride 1:
      // [[1, 1+2, 2], [1+3, 1+2+3+4, 2+4], [3, 3+4, 4]] / 4.
      CaseBuilder b("padding counted", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 2, 2}, {1, 2, 3, 4})},
                    attrs({{"kernel", k2}, {"stride", Shape{1, 1}}, {"padding", Shape{1, 1, 1, 1}}})));
      b.expect("y", {1, 1, 3, 3}, {0.25, 0.75, 0.5, 1, 2.5, 1.5, 0.75, 1.75, 1});
      add(b);
    }
    {
      // 3x1 windows, stride (1,1) over a 3x2 image: column means.
      CaseBuilder b("non-square window", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 3, 2}, {1, 10, 2, 20, 6, 60})},
                    attrs({{"kernel", Shape{3, 1}}, {"stride", Shape{1, 1}}})));
      b.expect("y", {1, 1, 1, 2}, {3, 30});
      add(b);
    }
    {
      // Ceil mode, no padding: a 3x3 ramp in 2x2 windows stride 2; the partial windows divide
      // by their size (they lie outside any padding): 12/4, (3+6)/2, (7+8)/2, 9/1.
      CaseBuilder b("ceil mode", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 3, 3}, ramp(9))},
                    attrs({{"kernel", k2}, {"stride", k2}, {"ceil_mode", int64_t(1)}})));
      b.expect("y", {1, 1, 2, 2}, {3, 4.5, 7.5, 9});
      add(b);
    }
    {
      // count_include_pad=false: the "padding counted" case divided by the in-image pixels
      // (1, 2 or 4): [[1, 3/2, 2], [4/2, 10/4, 6/2], [3, 7/2, 4]].
      CaseBuilder b("padding not counted", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 2, 2}, {1, 2, 3, 4})},
                    attrs({{"kernel", k2},
                           {"stride", Shape{1, 1}},
                           {"padding", Shape{1, 1, 1, 1}},
                           {"count_include_pad", int64_t(0)}})));
      b.expect("y", {1, 1, 3, 3}, {1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4});
      add(b);
    }
    {
      // 3x3 stride 2 padding 1, ceil mode, padding counted, over a 4x4 ramp (x = 4r+c+1):
      // 3x3 windows (floor: 2x2). Rows {0,1}, {1,2,3}, {3} span 3, 3 and 2 rows of the padded
      // input (the last window starts on row 3 and ends past the one padded row), columns
      // alike, so divisors are 9, 9, 6 / 9, 9, 6 / 6, 6, 4 and the sums 14, 30, 12 / 57, 99, 36 /
      // 27, 45, 16.
      CaseBuilder b("ceil mode, padding counted", dt);
      b.output(b.op(kind, {b.fin("x", {1, 1, 4, 4}, ramp(16))},
                    attrs({{"kernel", Shape{3, 3}},
                           {"stride", k2},
                           {"padding", Shape{1, 1, 1, 1}},
                           {"ceil_mode", int64_t(1)}})));
      b.expect("y", {1, 1, 3, 3}, {14.0 / 9, 30.0 / 9, 2, 57.0 / 9, 11, 6, 4.5, 7.5, 4});
      add(b);
    }
    return;
  }
}

SHOAL_INTERPRETER_CASES(AvgPool2dGrad, OpKind::AvgPool2dGrad) {
  {
    const Shape k2{2, 2};
    {
      // dy/4 spread over each 2x2 window of a 5x5 input (floor mode: row/column 4 get 0).
      CaseBuilder b("2x2 stride 2, floor mode", dt);
      b.output(b.op(
          kind, {b.fin("dy", {1, 1, 2, 2}, {4, 8, 12, 16})},
          attrs({{"kernel", k2}, {"stride", k2}, {"padding", Shape{0, 0, 0, 0}}, {"input_shape", Shape{1, 1, 5, 5}}})));
      b.expect("y", {1, 1, 5, 5}, {1, 1, 2, 2, 0, 1, 1, 2, 2, 0, 3, 3, 4, 4, 0, 3, 3, 4, 4, 0, 0, 0, 0, 0, 0});
      add(b);
    }
    {
      // Padding 1, stride 1, dy(r,c) = 3r+c+1 over 3x3 windows of a 2x2 input: pixel (i,j) is in
      // windows oy in {i,i+1}, ox in {j,j+1}: (1+2+4+5)/4 = 3, (2+3+5+6)/4 = 4, (4+5+7+8)/4 = 6,
      // (5+6+8+9)/4 = 7.
      CaseBuilder b("padding, overlapping", dt);
      b.output(b.op(kind, {b.fin("dy", {1, 1, 3, 3}, ramp(9))},
                    attrs({{"kernel", k2},
                           {"stride", Shape{1, 1}},
                           {"padding", Shape{1, 1, 1, 1}},
                           {"input_shape", Shape{1, 1, 2, 2}}})));
      b.expect("y", {1, 1, 2, 2}, {3, 4, 6, 7});
      add(b);
    }
    {
      // Ceil mode, the forward case above: dy = [1,2,3,4] over divisors 4, 2, 2, 1.
      CaseBuilder b("ceil mode", dt);
      b.output(b.op(kind, {b.fin("dy", {1, 1, 2, 2}, {1, 2, 3, 4})},
                    attrs({{"kernel", k2},
                           {"stride", k2},
                           {"padding", Shape{0, 0, 0, 0}},
                           {"input_shape", Shape{1, 1, 3, 3}},
                           {"ceil_mode", int64_t(1)}})));
      b.expect("y", {1, 1, 3, 3}, {0.25, 0.25, 1, 0.25, 0.25, 1, 1.5, 1.5, 4});
      add(b);
    }
    {
      // count_include_pad=false, 2x2 stride 1 padding 1 over a 2x2 input: dy = 1..9 divided by
      // the windows' in-image counts [[1,2,1],[2,4,2],[1,2,1]] = [[1,1,3],[2,1.25,3],[7,4,9]];
      // pixel (i,j) gathers windows {i,i+1} x {j,j+1}: 5.25, 8.25, 14.25, 17.25.
      CaseBuilder b("padding not counted", dt);
      b.output(b.op(kind, {b.fin("dy", {1, 1, 3, 3}, ramp(9))},
                    attrs({{"kernel", k2},
                           {"stride", Shape{1, 1}},
                           {"padding", Shape{1, 1, 1, 1}},
                           {"input_shape", Shape{1, 1, 2, 2}},
                           {"count_include_pad", int64_t(0)}})));
      b.expect("y", {1, 1, 2, 2}, {5.25, 8.25, 14.25, 17.25});
      add(b);
    }
    return;
  }
}

SHOAL_INTERPRETER_CASES(FusedConv2d, OpKind::FusedConv2d) {
  {
    // The design's ramp example minus a bias of 50, then relu:
    // [[35,40,45],[60,65,70],[85,90,95]] - 50 -> [[0,0,0],[10,15,20],[35,40,45]].
    CaseBuilder b("ramp, bias, relu", dt);
    b.output(b.op(kind,
                  {b.fin("x", {1, 1, 5, 5}, ramp(25)), b.param("w", {1, 1, 3, 3}, {1, 0, 1, 0, 1, 0, 1, 0, 1}),
                   b.param("b", {1}, {-50})},
                  attrs({{"activation", std::string("relu")}})));
    b.expect("y", {1, 1, 3, 3}, {0, 0, 0, 10, 15, 20, 35, 40, 45});
    add(b);
  }
  {
    // conv2d's depthwise ramp case ([30,35,50,55] and [198,207,234,243]) with bias -40 and
    // -200, then relu.
    CaseBuilder b("depthwise, bias, relu", dt);
    std::vector<double> w = {1, 0, 1, 0, 1, 0, 1, 0, 1};
    for (int i = 0; i < 9; ++i) w.push_back(1);
    b.output(b.op(kind, {b.fin("x", {1, 2, 4, 4}, ramp(32)), b.param("w", {2, 1, 3, 3}, w), b.param("b", {2}, {-40, -200})},
                  attrs({{"activation", std::string("relu")}, {"groups", int64_t(2)}})));
    b.expect("y", {1, 2, 2, 2}, {0, 0, 10, 15, 0, 7, 34, 43});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(FusedConv2dPool, OpKind::FusedConv2dPool) {
  {
    // fused_conv2d's case above, [[0,0,0],[10,15,20],[35,40,45]], then max-pooled.
    auto conv = [&](CaseBuilder& b, Attrs a) {
      a.set("activation", std::string("relu"));
      return b.op(kind,
                  {b.fin("x", {1, 1, 5, 5}, ramp(25)), b.param("w", {1, 1, 3, 3}, {1, 0, 1, 0, 1, 0, 1, 0, 1}),
                   b.param("b", {1}, {-50})},
                  a);
    };
    {
      // Overlapping 2x2 windows, stride 1: {0,0,10,15} -> 15, {0,0,15,20} -> 20, 40, 45.
      CaseBuilder b("relu, 2x2 pool stride 1", dt);
      b.output(conv(b, attrs({{"pool_kernel", Shape{2, 2}}, {"pool_stride", Shape{1, 1}}})));
      b.expect("y", {1, 1, 2, 2}, {15, 20, 40, 45});
      add(b);
    }
    {
      // Padding 1 all round, stride 2: windows {0}, {0,0}, {10,35}, {15,20,40,45}; ties of
      // relu's zeros in the first two.
      CaseBuilder b("relu, padded 2x2 pool stride 2", dt);
      b.output(conv(
          b, attrs({{"pool_kernel", Shape{2, 2}}, {"pool_stride", Shape{2, 2}}, {"pool_padding", Shape{1, 1, 1, 1}}})));
      b.expect("y", {1, 1, 2, 2}, {0, 0, 35, 45});
      add(b);
    }
    {
      // tanh, one 3x3 window over the whole conv output (no bias): max = tanh(95).
      CaseBuilder b("tanh, one window", dt);
      b.output(b.op(
          kind, {b.fin("x", {1, 1, 5, 5}, ramp(25)), b.param("w", {1, 1, 3, 3}, {1, 0, 1, 0, 1, 0, 1, 0, 1})},
          attrs({{"activation", std::string("tanh")}, {"pool_kernel", Shape{3, 3}}, {"pool_stride", Shape{1, 1}}})));
      b.expect("y", {1, 1, 1, 1}, {std::tanh(95.0)});
      add(b);
    }
    {
      // Ceil mode: 2x2 windows stride 2 over the 3x3 conv output, the last row and column
      // partial: {0,0,10,15} -> 15, {0,20} -> 20, {35,40} -> 40, {45} -> 45.
      CaseBuilder b("relu, 2x2 pool stride 2, ceil mode", dt);
      b.output(conv(b, attrs({{"pool_kernel", Shape{2, 2}}, {"pool_stride", Shape{2, 2}}, {"pool_ceil_mode", int64_t(1)}})));
      b.expect("y", {1, 1, 2, 2}, {15, 20, 40, 45});
      add(b);
    }
    return;
  }
}

SHOAL_INTERPRETER_CASES(ConvTranspose2d, OpKind::ConvTranspose2d) {
  const std::vector<double> x22 = {1, 2, 3, 4};
  {
    // A transposed conv of a 2x2 input spreads each x(i,j)·w over the output at (i,j):
    // x = w = [[1,2],[3,4]] -> [[1,4,4],[6,20,16],[9,24,16]] (conv2d_backward_data's case).
    CaseBuilder b("2x2 input, stride 1", dt);
    b.output(b.op(kind, {b.fin("x", {1, 1, 2, 2}, x22), b.param("w", {1, 1, 2, 2}, x22)}));
    b.expect("y", {1, 1, 3, 3}, {1, 4, 4, 6, 20, 16, 9, 24, 16});
    add(b);
  }
  {
    // Stride 2 with a 2x2 kernel (upsampling): the copies x(i,j)·w tile the 4x4 output
    // without overlapping; bias 0.5.
    CaseBuilder b("2x2 kernel stride 2, bias", dt);
    b.output(b.op(kind, {b.fin("x", {1, 1, 2, 2}, x22), b.param("w", {1, 1, 2, 2}, x22), b.param("b", {1}, {0.5})},
                  attrs({{"stride", Shape{2, 2}}})));
    b.expect("y", {1, 1, 4, 4},
             {1.5, 2.5, 2.5, 4.5, 3.5, 4.5, 6.5, 8.5, 3.5, 6.5, 4.5, 8.5, 9.5, 12.5, 12.5, 16.5});
    add(b);
  }
  {
    // 3x3 ones, stride 2, padding 1, output_padding 1 (PyTorch's classic upsampler): the
    // full output row r gets the input rows i with 2i <= r <= 2i+2; the output is rows and
    // columns 1..4 of it: rows {0}, {0,1}, {1}, {1} (likewise columns) of x summed.
    CaseBuilder b("stride 2, padding 1, output_padding 1", dt);
    b.output(b.op(kind, {b.fin("x", {1, 1, 2, 2}, x22), b.param("w", {1, 1, 3, 3}, std::vector<double>(9, 1))},
                  attrs({{"stride", Shape{2, 2}}, {"padding", Shape{1, 1, 1, 1}}, {"output_padding", Shape{1, 1}}})));
    b.expect("y", {1, 1, 4, 4}, {1, 3, 2, 2, 4, 10, 6, 6, 3, 7, 4, 4, 3, 7, 4, 4});
    add(b);
  }
  {
    // Two groups: input channel 0 = [1,2] feeds outputs 0 and 1 (weights 1, -1), channel
    // 1 = [3,4] outputs 2 and 3 (weights 2, 0.5); weight [2, 2, 1, 1].
    CaseBuilder b("two groups, 1x1", dt);
    b.output(b.op(kind, {b.fin("x", {1, 2, 1, 2}, x22), b.param("w", {2, 2, 1, 1}, {1, -1, 2, 0.5})},
                  attrs({{"groups", int64_t(2)}})));
    b.expect("y", {1, 4, 1, 2}, {1, 2, -1, -2, 6, 8, 1.5, 2});
    add(b);
  }
  {
    // Dilation 2: one input pixel (2) spreads the 2x2 taps to the corners of a 3x3 output.
    CaseBuilder b("dilation 2", dt);
    b.output(b.op(kind, {b.fin("x", {1, 1, 1, 1}, {2}), b.param("w", {1, 1, 2, 2}, x22)},
                  attrs({{"dilation", Shape{2, 2}}})));
    b.expect("y", {1, 1, 3, 3}, {2, 0, 4, 0, 0, 0, 6, 0, 8});
    add(b);
  }
}

SHOAL_INTERPRETER_CASES(GlobalAvgPool, OpKind::GlobalAvgPool) {
  {
    // Planes 1..4, 5..8, 9..12, 13..16 of a [2,2,2,2] ramp.
    CaseBuilder b("batch and channels", dt);
    b.output(b.op(kind, {b.fin("x", {2, 2, 2, 2}, ramp(16))}));
    b.expect("y", {2, 2, 1, 1}, {2.5, 6.5, 10.5, 14.5});
    add(b);
  }
  {
    CaseBuilder b("a 2x3 plane", dt);
    b.output(b.op(kind, {b.fin("x", {1, 1, 2, 3}, {1, -2, 3, 4, 5, 7})}));
    b.expect("y", {1, 1, 1, 1}, {3});
    add(b);
  }
}

}  // namespace
}  // namespace shoal
