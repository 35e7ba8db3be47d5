module svidverify

go 1.19
